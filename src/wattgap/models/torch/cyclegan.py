"""CycleGAN: the ResNet-9-block generator and the 70x70 PatchGAN discriminator of Zhu et al. (2017),
with instance normalisation (no affine parameters, so convolutions carry biases) and reflection padding."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from wattgap.models.torch.objective import StepParts


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

    def make_train_step(self, parts: StepParts) -> Callable[[], None]:
        """One CycleGAN iteration as in Zhu et al.: least-squares adversarial losses, cycle (lambda 10) and
        identity (0.5 x 10) L1 losses; generators then discriminators. The history pool of fakes is left
        out. The four networks are read when the step is made, so a backend may replace them first (by
        compiled ones)."""
        g_ab, g_ba, d_a, d_b = self.g_ab, self.g_ba, self.d_a, self.d_b
        opt_g = parts.optimizer(itertools.chain(g_ab.parameters(), g_ba.parameters()))
        opt_d = parts.optimizer(itertools.chain(d_a.parameters(), d_b.parameters()))
        mse, l1 = nn.functional.mse_loss, nn.functional.l1_loss
        lambda_cycle, lambda_identity = 10.0, 0.5
        autocast, apply = parts.autocast, parts.apply

        def set_discriminators(trainable: bool) -> None:
            for param in itertools.chain(d_a.parameters(), d_b.parameters()):
                param.requires_grad_(trainable)

        def adversarial(prediction: Tensor, real: bool) -> Tensor:
            target = torch.ones_like(prediction) if real else torch.zeros_like(prediction)
            return mse(prediction.float(), target.float())

        shape = parts.fetch()[0].shape
        domain_b = torch.randn(shape, generator=parts.generator).to(parts.device)

        def step() -> None:
            real_a, real_b = parts.fetch()[0], domain_b
            set_discriminators(False)
            with autocast():
                fake_b, fake_a = g_ab(real_a), g_ba(real_b)
                cycle = l1(g_ba(fake_b).float(), real_a.float()) + l1(g_ab(fake_a).float(), real_b.float())
                identity = l1(g_ab(real_b).float(), real_b.float()) + l1(g_ba(real_a).float(), real_a.float())
                loss_g = (
                    adversarial(d_b(fake_b), True)
                    + adversarial(d_a(fake_a), True)
                    + lambda_cycle * cycle
                    + lambda_cycle * lambda_identity * identity
                )
            apply(loss_g, opt_g)
            set_discriminators(True)
            with autocast():
                loss_d = 0.5 * (
                    adversarial(d_a(real_a), True)
                    + adversarial(d_a(fake_a.detach()), False)
                    + adversarial(d_b(real_b), True)
                    + adversarial(d_b(fake_b.detach()), False)
                )
            apply(loss_d, opt_d)

        return step


def cyclegan(num_classes: int = 0, image_size: int = 256, in_channels: int = 3) -> nn.Module:
    if image_size % 4 or image_size < 32:
        raise ValueError(f"cyclegan needs an image size divisible by 4 and at least 32, got {image_size}")
    return CycleGAN(in_channels)
