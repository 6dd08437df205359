"""Benchmark ``rdcompress.importance``: cost of each objective relative to a plain pass.

For each model (MNIST MLP, ResNet-20 on CIFAR-10 JPEG) over the same calibration set, prints:
- ``x plain``: time of the objective / time of one plain forward+backward over the same data
  (median over repeats of the ratio to a plain pass timed just before it);
- ``vs loop``: speed-up over a per-sample autograd loop (timed on ``--loop-samples`` samples
  and scaled per sample);
- ``vs vmap``: speed-up over naive torch.func over the whole model (vmap of grad / jacrev);
- ``peak MiB``: peak resident memory above the start of the measurement (sampled /proc RSS).
Timings on a shared CPU are noisy: read ratios, which are measured side by side in one run;
the default clock is CPU time (``--clock wall`` for elapsed time).
``--conv-methods`` instead times, per Conv2d layer of ResNet-20 on real activations, the ways to
form per-sample weight gradients (and their squares' sum) against the batch weight gradient.
Never asserts on time. Usage:
  python bench/importance.py --data-dir ../shared/data --samples 512
  python bench/importance.py --data-dir ../shared/data --samples 128 --conv-methods
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev, vmap

from rdcompress.importance import compute_importance

FIRST_ORDER = ("gradient", "fisher-mc", "fisher", "output")


class PeakRSS:
    """Peak resident set size above the value at entry, sampled every 2 ms."""

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.002)

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    @property
    def mib(self) -> float:
        return (self.peak - self.start) / 2**20


CLOCK: Callable[[], float] = time.perf_counter  # set by --clock in main()


def timed(fn: Callable[[], object], repeats: int = 1) -> tuple[float, float]:
    times, peak = [], 0.0
    for _ in range(repeats):
        with PeakRSS() as rss:
            start = CLOCK()
            fn()
            times.append(CLOCK() - start)
        peak = max(peak, rss.mib)
    return min(times), peak


def plain_pass(model: nn.Module, inputs: Tensor, labels: Tensor, chunk: int) -> None:
    for start in range(0, len(inputs), chunk):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(inputs[start:start + chunk]), labels[start:start + chunk]).backward()


def per_sample_loop(model: nn.Module, inputs: Tensor, labels: Tensor, objective: str) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in params]
    gen = torch.Generator().manual_seed(0)
    for n in range(len(inputs)):
        logits = model(inputs[n:n + 1])[0]
        if objective == "gradient":
            scalars = [F.cross_entropy(logits[None], labels[n:n + 1])]
        elif objective == "fisher-mc":
            label = torch.multinomial(torch.softmax(logits.detach(), 0), 1, generator=gen)
            scalars = [F.cross_entropy(logits[None], label)]
        elif objective == "fisher":
            probs = torch.softmax(logits, 0)
            scalars = [probs[c] / probs[c].detach().sqrt() for c in range(len(probs))]
        else:
            scalars = list(logits)
        for scalar in scalars:
            for acc, g in zip(total, torch.autograd.grad(scalar, params, retain_graph=True),
                              strict=True):
                acc += g * g


def naive_vmap(model: nn.Module, inputs: Tensor, labels: Tensor, objective: str,
               chunk: int) -> None:
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def logits_of(p: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(model, (p, buffers), (x[None],))[0]

    def loss_of(p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(logits_of(p, x)[None], y[None])

    total = {k: torch.zeros_like(v) for k, v in params.items()}
    for start in range(0, len(inputs), chunk):
        x, y = inputs[start:start + chunk], labels[start:start + chunk]
        if objective in ("gradient", "fisher-mc"):
            if objective == "fisher-mc":
                with torch.no_grad():
                    y = torch.multinomial(torch.softmax(model(x), 1), 1).squeeze(1)
            grads = vmap(grad(loss_of), in_dims=(None, 0, 0))(params, x, y)
            for k, g in grads.items():
                total[k] += (g * g).sum(0)
        else:
            jac = vmap(jacrev(logits_of), in_dims=(None, 0))(params, x)  # (n, C, *shape)
            with torch.no_grad():
                probs = torch.softmax(model(x), 1)  # (n, C)
            for k, j in jac.items():
                flat = j.flatten(2)  # (n, C, P)
                if objective == "fisher":  # sum_c p_c (J^T (e_c - p))^2
                    mixed = flat - torch.einsum("nc,ncp->np", probs, flat)[:, None]
                    total[k] += (probs[:, :, None] * mixed * mixed).sum((0, 1)).view_as(total[k])
                else:
                    total[k] += (flat * flat).sum((0, 1)).view_as(total[k])


def load(name: str, data_dir: str, samples: int) -> tuple[nn.Module, Tensor, Tensor]:
    from rdcompress.data import load_dataset
    from rdcompress.models import load_model
    from rdcompress.pipeline import dataset_tensors

    if name == "resnet20":
        weights = os.path.join(data_dir, "checkpoints", "resnet20-12fca82f.th")
        loaded = load_model("resnet20", weights=weights if os.path.exists(weights) else None)
        dataset = "cifar10-jpeg"
    else:
        loaded = load_model(name)  # random init is fine for timing
        dataset = "mnist"
    images, labels = dataset_tensors(load_dataset(dataset, "test", data_dir=data_dir), samples)
    return loaded.module.eval(), loaded.preprocessing(images), labels


def bench_model(name: str, args: argparse.Namespace) -> list[dict]:
    model, inputs, labels = load(name, args.data_dir, args.samples)
    loop_x, loop_y = inputs[:args.loop_samples], labels[:args.loop_samples]
    scale = len(inputs) / len(loop_x)

    def plain() -> tuple[float, float]:
        return timed(lambda: plain_pass(model, inputs, labels, args.chunk))

    plain()  # warm-up
    plain_time, plain_mem = timed(lambda: plain_pass(model, inputs, labels, args.chunk), 3)
    rows = [{"model": name, "objective": "plain fwd+bwd", "seconds": plain_time,
             "x plain": 1.0, "peak MiB": plain_mem}]
    for objective in args.objectives:
        kwargs = {"hessian_method": args.hessian_method} if "hessian" in objective else {}
        ratios, times, mem = [], [], 0.0
        for _ in range(args.repeats):  # each run next to a plain pass: ratios resist noise
            reference, _ = plain()
            ours, peak = timed(lambda o=objective, kw=kwargs: compute_importance(
                model, [(inputs, labels)], o, chunk_size=args.chunk, **kw))
            ratios.append(ours / reference)
            times.append(ours)
            mem = max(mem, peak)
        ours = min(times)
        row = {"model": name, "objective": objective, "seconds": ours,
               "x plain": statistics.median(ratios), "peak MiB": mem}
        if objective in FIRST_ORDER:
            loop, _ = timed(lambda o=objective: per_sample_loop(model, loop_x, loop_y, o),
                            repeats=args.repeats)
            vmapped, vmem = timed(lambda o=objective: naive_vmap(model, loop_x, loop_y, o,
                                                                 args.vmap_chunk),
                                  repeats=args.repeats)
            row.update({"vs loop": loop * scale / ours, "vs vmap": vmapped * scale / ours,
                        "vmap MiB": vmem})
        rows.append(row)
        print(_format(row), flush=True)
    return rows


def conv_methods(args: argparse.Namespace) -> None:
    """Per Conv2d layer: ms of each per-sample method, side by side, min over repeats."""
    model, inputs, labels = load("resnet20", args.data_dir, args.samples)
    calls: list[list] = []

    def hook(module: nn.Module, args_: tuple, output: Tensor) -> None:
        record = [module, args_[0].detach(), None]
        output.register_hook(lambda grad, record=record: record.__setitem__(2, grad))
        calls.append(record)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    F.cross_entropy(model(inputs), labels).backward()
    for handle in handles:
        handle.remove()
    totals: dict[str, float] = {}
    print("layer (weight shape, input)            " + "  ".join(
        f"{k:>8}" for k in ("batch", "grouped", "vmap", "unfold")) + "   (ms; batch = no squares)")
    for module, x, g in calls:
        row = {name: timed(fn, repeats=args.repeats)[0] * 1e3
               for name, fn in _conv_methods_for(module, x, g).items()}
        for name, value in row.items():
            totals[name] = totals.get(name, 0.0) + value
        label = f"{tuple(module.weight.shape)} {tuple(x.shape[1:])}"
        print(f"{label:<38} " + "  ".join(f"{v:8.1f}" for v in row.values()))
    print(f"{'total':<38} " + "  ".join(f"{v:8.1f}" for v in totals.values()))


def _conv_methods_for(module: nn.Conv2d, x: Tensor, g: Tensor) -> dict[str, Callable]:
    from rdcompress.importance.per_sample import conv_weight_per_sample

    weight, stride, padding = module.weight.detach(), list(module.stride), list(module.padding)

    def weight_grad(out_grad: Tensor, inputs: Tensor) -> Tensor:
        return torch.ops.aten.convolution_backward(
            out_grad, inputs, weight, None, stride, padding, list(module.dilation), False,
            [0, 0], module.groups, [False, True, False])[1]

    def squares(per_sample: Tensor) -> Tensor:
        return per_sample.square_().sum(0)

    def unfold() -> Tensor:
        cols = F.unfold(x, module.kernel_size, padding=padding, stride=stride)  # (N, K, L)
        return squares(torch.bmm(g.flatten(2), cols.transpose(1, 2)))

    return {
        "batch": lambda: weight_grad(g, x),
        "grouped": lambda: squares(conv_weight_per_sample(module, x, padding, g)),
        "vmap": lambda: squares(vmap(lambda a, b: weight_grad(b[None], a[None]))(x, g)),
        "unfold": unfold,
    }


def _format(row: dict) -> str:
    def cell(key: str, fmt: str) -> str:
        return format(row[key], fmt) if key in row else "-"
    return (f"{row['model']:<10} {row['objective']:<17} {cell('seconds', '8.3f')} "
            f"{cell('x plain', '8.2f')} {cell('vs loop', '8.1f')} {cell('vs vmap', '8.1f')} "
            f"{cell('peak MiB', '9.0f')} {cell('vmap MiB', '9.0f')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.path.join("..", "shared", "data"))
    parser.add_argument("--models", nargs="+", default=["mnist-mlp", "resnet20"])
    parser.add_argument("--objectives", nargs="+", default=list(FIRST_ORDER))
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--loop-samples", type=int, default=32,
                        help="samples for the per-sample loop and naive vmap (scaled up)")
    parser.add_argument("--chunk", type=int, default=64,
                        help="samples per pass for ours and the plain pass (the library default)")
    parser.add_argument("--vmap-chunk", type=int, default=16)
    parser.add_argument("--hessian-method", default="exact")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per measurement: min time, median ratio to a plain pass")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="cpu: CPU time of this thread (1 thread) or process, which time "
                        "spent waiting for a shared CPU does not inflate; wall: elapsed time")
    parser.add_argument("--conv-methods", action="store_true",
                        help="time per-sample conv weight-gradient methods per ResNet-20 layer")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global CLOCK
    if args.clock == "cpu":  # the RSS sampler runs in its own thread: per-thread time if we can
        CLOCK = time.thread_time if args.threads == 1 else time.process_time
    if args.conv_methods:
        conv_methods(args)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.samples} calibration samples, chunk {args.chunk}, {args.clock} clock")
    header = ("model      objective          seconds  x plain  vs loop  vs vmap  peak MiB  "
              "vmap MiB")
    print(header)
    all_rows = []
    for name in args.models:
        rows = bench_model(name, args)
        print(_format(rows[0]))
        all_rows += rows
    print("\nmedian x plain:", statistics.median(r["x plain"] for r in all_rows[1:]))


if __name__ == "__main__":
    main()
