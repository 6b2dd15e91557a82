"""FRM speed: ours (only the 2*q*q needed DCT coefficients, float64) against a
full-DCT reference (torch-dct's 2-D DCT of every patch in float32, then the
bands: the public release's approach), measured side by side in one run.

Prints one JSON line per batch size: both medians (ms), speedup, and the relative
difference of the results on a well-conditioned input (every high-band coefficient
bounded away from zero) and, for information, on Gaussian noise (ill-conditioned:
near-zero denominators, where float32 and float64 legitimately disagree).

    python benchmarks/frm_speed.py [--repeats 15] [--device cpu|cuda]
"""
import argparse
import json
import statistics
import time

import torch
import torch_dct

from mwam_mm import frequency_ratio_metric
from mwam_mm.engine.runner_utils import positive_int
from mwam_mm.frm.frequency_ratio import _dct_matrix

SIZES = [(8, 3, 512, 640), (16, 1, 256, 320), (2, 3, 1024, 1280)]


def reference_frm(images, p=8, q=2, sigma=1e-6):
    """Full 2-D DCT of every patch (float32), then the paper's bands and ratio."""
    b, c, h, w = images.shape
    hp, wp = h // p, w // p
    x = images[:, :, :hp * p, :wp * p].reshape(b, c, hp, p, wp, p)
    patches = x.permute(0, 1, 2, 4, 3, 5)
    coeffs = torch_dct.dct_2d(patches, norm='ortho')
    low = coeffs[..., :q, :q]
    high = coeffs[..., p - q:, p - q:].flip(-1).flip(-2)
    return (low / (high + sigma)).abs().sum()


def well_conditioned(shape, seed=0):
    """Smooth content plus the four high-band DCT basis images in every patch."""
    g = torch.Generator().manual_seed(seed)
    b, c, h, w = shape
    d = _dct_matrix(8).float()
    bump = sum(torch.outer(d[u], d[v]) for u in (6, 7) for v in (6, 7)) * 2.0
    tiles = bump.repeat(h // 8, w // 8)
    yy, xx = torch.meshgrid(
        torch.linspace(0, 3, h), torch.linspace(0, 3, w), indexing='ij')
    smooth = torch.sin(xx) + torch.cos(yy)
    scale = torch.rand(b, c, 1, 1, generator=g) + 0.5
    return (smooth * scale + tiles + 0.01 * torch.randn(shape, generator=g)).float()


def median_ms(fn, repeats, device):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device == 'cuda':
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=positive_int, default=15)
    parser.add_argument('--device', default='cpu')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for shape in SIZES:
        x = well_conditioned(shape).to(args.device)
        noise = torch.randn(
            shape, generator=torch.Generator().manual_seed(1)).to(args.device)
        ours_ms = median_ms(lambda: frequency_ratio_metric(x), args.repeats,
                            args.device)
        ref_ms = median_ms(lambda: reference_frm(x), args.repeats, args.device)
        ours, ref = frequency_ratio_metric(x).item(), reference_frm(x).item()
        ours_noise = frequency_ratio_metric(noise).item()
        ref_noise = reference_frm(noise).item()
        print(
            json.dumps(
                dict(
                    shape=list(shape),
                    device=args.device,
                    threads=torch.get_num_threads(),
                    ours_median_ms=round(ours_ms, 2),
                    reference_median_ms=round(ref_ms, 2),
                    speedup=round(ref_ms / ours_ms, 2),
                    rel_diff=abs(ours - ref) / abs(ref),
                    rel_diff_noise=abs(ours_noise - ref_noise) / abs(ref_noise))))


if __name__ == '__main__':
    main()
