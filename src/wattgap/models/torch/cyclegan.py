"""CycleGAN: the ResNet-9-block generator and the 70x70 PatchGAN discriminator of Zhu et al. (2017),
with instance normalisation (no affine parameters, so convolutions carry biases) and reflection padding."""

from __future__ import annotations

from torch import Tensor, nn


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def generator(in_channels: int = 3, out_channels: int = 3, ngf: int = 64, blocks: int = 9) -> nn.Module:
    layers: list[nn.Module] = [
        nn.ReflectionPad2d(3),
        nn.Conv2d(in_channels, ngf, 7),
        _norm(ngf),
        nn.ReLU(inplace=True),
    ]
    width = ngf
    for _ in range(2):
        layers += [
            nn.Conv2d(width, width * 2, 3, stride=2, padding=1),
            _norm(width * 2),
            nn.ReLU(inplace=True),
        ]
        width *= 2
    layers += [ResidualBlock(width) for _ in range(blocks)]
    for _ in range(2):
        layers += [
            nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1),
            _norm(width // 2),
            nn.ReLU(inplace=True),
        ]
        width //= 2
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def discriminator(in_channels: int = 3, ndf: int = 64, n_layers: int = 3) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
    width = ndf
    for index in range(1, n_layers + 1):
        new_width = ndf * min(2**index, 8)
        stride = 2 if index < n_layers else 1
        layers += [
            nn.Conv2d(width, new_width, 4, stride=stride, padding=1),
            _norm(new_width),
            nn.LeakyReLU(0.2, True),
        ]
        width = new_width
    layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
    return nn.Sequential(*layers)


class CycleGAN(nn.Module):
    """Both generators (A->B, B->A) and both discriminators. Inference runs g_ab."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.g_ab = generator(in_channels, in_channels)
        self.g_ba = generator(in_channels, in_channels)
        self.d_a = discriminator(in_channels)
        self.d_b = discriminator(in_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.g_ab(x)


def cyclegan(num_classes: int = 0, image_size: int = 256, in_channels: int = 3) -> nn.Module:
    if image_size % 4 or image_size < 32:
        raise ValueError(f"cyclegan needs an image size divisible by 4 and at least 32, got {image_size}")
    return CycleGAN(in_channels)
