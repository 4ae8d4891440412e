"""GPU check of the PyTorch backend's worker (issue 18): runs python/helix_torch_worker.py exactly as
the daemon does (one process, the same frames on its stdin/stdout) with `device: cuda` on a
TorchScript MLP it builds, and checks that the worker reports a CUDA device, names the GPU, and
answers batches equal to torch on the CPU (max abs diff <= 1e-4: TF32/cuBLAS differ from the CPU).

Needs only Python and a torch with CUDA (no Node.js), so it runs on a GPU machine that has neither:
    python3 bench/gpu-check-pytorch.py            # device cuda: fails without a usable GPU
    python3 bench/gpu-check-pytorch.py auto       # on a CPU box: shows the visible fallback
Prints one JSON line with what it found and exits 0 when every check holds.
"""

import json
import os
import struct
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "..", "python", "helix_torch_worker.py")
POLICY = sys.argv[1] if len(sys.argv) > 1 else "cuda"


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(256, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 16)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def read_frame(pipe):
    (length,) = struct.unpack("<I", pipe.read(4))
    header = json.loads(pipe.read(length))
    body = pipe.read(sum(t["nbytes"] for t in header.get("tensors", [])))
    return header, body


def main():
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.pt")
        model = torch.jit.script(MLP().eval())
        torch.jit.save(model, path)
        spec = {
            "model": path,
            "device": POLICY,
            "gpu": 0,
            "threads": None,
            "inputs": [{"name": "x", "datatype": "FP32"}],
            "outputs": [{"name": "y", "datatype": "FP32"}],
        }
        worker = subprocess.Popen(
            [sys.executable, WORKER, json.dumps(spec)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        hello, _ = read_frame(worker.stdout)
        result = {"policy": POLICY, "hello": hello, "batches": []}
        ok = hello.get("ok") is True
        if ok and POLICY == "cuda":
            ok = hello["device"].startswith("cuda") and hello["cuda_available"] and hello["device_name"] != "cpu"
        if hello.get("ok"):
            for batch in (1, 64, 512):
                x = torch.randn(batch, 256)
                data = x.numpy().tobytes()
                header = json.dumps(
                    {"tensors": [{"name": "x", "datatype": "FP32", "shape": [batch, 256], "nbytes": len(data)}]}
                ).encode()
                worker.stdin.write(struct.pack("<I", len(header)) + header + data)
                worker.stdin.flush()
                answer, body = read_frame(worker.stdout)
                got = torch.frombuffer(bytearray(body), dtype=torch.float32).reshape(batch, 16)
                with torch.no_grad():
                    expected = model(x)
                diff = float((got - expected).abs().max())
                result["batches"].append({"batch": batch, "ok": answer["ok"], "max_abs_diff": diff})
                ok = ok and answer["ok"] and diff <= 1e-4
        worker.stdin.close()
        worker.wait(timeout=30)
        result["ok"] = ok
        print(json.dumps(result))
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
