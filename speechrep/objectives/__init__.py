"""Training objectives: InfoNCE (:mod:`.infonce`), mutual-information estimators for Deep
InfoMax (:mod:`.mi`), reconstruction losses and scores (:mod:`.reconstruction`), the vector
quantiser's commitment loss (:mod:`.commitment`), adversarial terms (:mod:`.adversarial`:
gradient reversal, least-squares GAN, the speaker adversary), speaker consistency in a frozen
speaker model's features (:mod:`.speaker_consistency`), the cosine / angular-margin softmax
of speaker embeddings (:mod:`.angular_margin`) and collapse monitors (:mod:`.collapse`)."""
