"""The zoo in Keras 3, module for module with ``models/torch`` (the same architectures, the same parameter
counts), in channels-last layout. Weighted layers are named in the order their PyTorch twins are
registered, so ``transfer.copy_torch_weights`` can pair them one to one."""
