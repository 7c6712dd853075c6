"""Training objectives: InfoNCE (:mod:`.infonce`), mutual-information estimators for Deep
InfoMax (:mod:`.mi`), reconstruction scores (:mod:`.reconstruction`) and collapse
monitors (:mod:`.collapse`)."""
