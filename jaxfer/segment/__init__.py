"""Segmentation pre-training for Double DQN (Bélignon 2020): automatic labels (``labels``), the FCN
(``fcn``), its training (``train``), its export as a Q-network trunk (``export``), pictures and
tables (``report``), and ``jaxfer segment`` (``pipeline``, configured by ``config``)."""
