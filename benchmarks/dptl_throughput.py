"""Frames/s of the DPTL pipeline (Grad-CAM + local threshold + SSIM) on N 84x84 frames, jitted and
batched, against the pipeline a user would otherwise write frame by frame (Grad-CAM per frame in
JAX, scikit-image's threshold_local and structural_similarity per frame). Compile time apart.

    python benchmarks/dptl_throughput.py [--frames 1000]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxfer.code_path import CodePath
from jaxfer.dptl import gradcam, similarity
from jaxfer.networks.q_nets import make_network
from jaxfer.runtime import files
from jaxfer.runtime.run import environment_info

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=1000)
    p.add_argument("--out", type=Path, default=RESULTS / "dptl_throughput.json")
    args = p.parse_args()
    from skimage.filters import threshold_local
    from skimage.metrics import structural_similarity

    path = CodePath.of()  # this backend's code path, as a DPTL run takes it
    net = make_network("nature_cnn", 6, path)
    obs = jax.random.randint(jax.random.PRNGKey(0), (args.frames, 84, 84, 4), 0, 256).astype(jnp.uint8)
    params = net.init(jax.random.PRNGKey(1), obs[:1])
    frames = obs[..., -1].astype(jnp.float32) / 255.0

    def batched(o, f):
        return similarity.cam_mask_ssim(gradcam.cams(net, params, o, chunk=32), f, path=path)

    fn = jax.jit(batched)
    start = time.perf_counter()
    fn = fn.lower(obs, frames).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(fn(obs, frames))
    start = time.perf_counter()
    jax.block_until_ready(fn(obs, frames))
    batched_s = time.perf_counter() - start

    one_cam = jax.jit(lambda o: gradcam.cams(net, params, o[None])[0])
    one_cam(obs[0]).block_until_ready()
    n_ref = min(args.frames, 200)  # the per-frame loop is slow: time a sample of it
    start = time.perf_counter()
    for i in range(n_ref):
        cam = np.asarray(one_cam(obs[i]), np.float64)
        frame = np.asarray(frames[i], np.float64)
        mask = (frame > threshold_local(frame, 35)).astype(np.float64)
        structural_similarity(cam, mask, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
    per_frame_s = (time.perf_counter() - start) / n_ref

    result = {"benchmark": "dptl_throughput", "frames": args.frames, "network": "nature_cnn", **environment_info(),
              "compile_s": round(compile_s, 2), "batched_frames_per_s": round(args.frames / batched_s, 1),
              "per_frame_loop_frames_per_s": round(1 / per_frame_s, 1), "per_frame_loop_sampled": n_ref,
              "speedup": round(per_frame_s * args.frames / batched_s, 2)}
    files.write_json(args.out, result)
    print(result)


if __name__ == "__main__":
    main()
