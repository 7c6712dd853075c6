"""Training objectives: InfoNCE (:mod:`.infonce`), mutual-information estimators for Deep
InfoMax (:mod:`.mi`), reconstruction losses and scores (:mod:`.reconstruction`), adversarial
terms (:mod:`.adversarial`: gradient reversal, least-squares GAN, the speaker adversary),
speaker consistency in a frozen speaker model's features (:mod:`.speaker_consistency`) and
collapse monitors (:mod:`.collapse`)."""
