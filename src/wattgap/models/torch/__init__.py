"""PyTorch implementations of the zoo. torchvision is not used: it does not import beside the CPU build
of torch this project pins, so the architectures are written here and checked against reference counts."""
