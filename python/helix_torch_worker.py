"""Helix's PyTorch worker: serves one TorchScript model to the helix daemon over stdin/stdout.

Started by the daemon as `python3 helix_torch_worker.py SPEC_JSON`, one process per model instance.
Frames both ways: a 4-byte little-endian header length, a JSON header, then the raw little-endian
bytes of every tensor the header lists, back to back (tensor data never goes through JSON).
With "shm" in the spec (the path of a file in /dev/shm that the daemon created) the tensors move
through that file instead, mapped here with mmap: the headers give each tensor's "offset" in it,
frames carry no tensor bytes, inputs are read where they lie (no copy) and outputs are written
after the inputs, the file grown first when they do not fit.

SPEC_JSON: {"model": path, "device": "auto"|"cuda"|"cpu", "gpu": N|null, "shm": path|null,
            "inputs": [{"name", "datatype"}...], "outputs": [{"name", "datatype"}...]}
First frame out: {"ok": true, "torch": version, "cuda_available": bool, "device": "cpu"|"cuda:N",
                  "device_name": str, "fallback": reason|null} or {"ok": false, "error": line}.
Then per request in: {"tensors": [{"name", "datatype", "shape", "nbytes", "offset"?}],
"outputs": [names]|null} and out: {"ok": true, "tensors": [...]} + bytes (the tensors' "offset"
instead with shm), or {"ok": false, "error": line}.
"""

import json
import mmap
import os
import struct
import sys
import traceback

INSTALL_HINT = (
    "install torch for this Python: apt-get install python3-torch (Debian) or pip install torch, "
    "or point backends.pytorch.python in helix.yaml at a Python that has it"
)

stdin = sys.stdin.buffer
# The frames get their own copy of the pipe; file descriptor 1 becomes stderr, so whatever the model
# prints (TorchScript's print writes to C++ stdout) goes to stderr, never into a frame.
stdout = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
sys.stdout = sys.stderr


def send(header, buffers=()):
    data = json.dumps(header).encode()
    stdout.write(struct.pack("<I", len(data)))
    stdout.write(data)
    for buf in buffers:
        stdout.write(buf)
    stdout.flush()


def read_exact(n):
    """n bytes from stdin into one new bytearray (no intermediate copies); None at end of input."""
    data = bytearray(n)
    view = memoryview(data)
    done = 0
    while done < n:
        got = stdin.readinto(view[done:])
        if not got:
            return None
        done += got
    return data


class ConfigMismatch(ValueError):
    """What the model returned disagrees with config.yaml (the message says how)."""


class ShmFull(RuntimeError):
    """/dev/shm has no room for a batch (the message says what to do)."""


def last_line(exc):
    """One line for the daemon: the exception; for TorchScript's errors, the last line of the
    interpreter's traceback they carry (the exception the scripted code raised)."""
    if isinstance(exc, (ConfigMismatch, ShmFull)):
        return str(exc)
    lines = [l.strip() for l in "".join(traceback.format_exception_only(type(exc), exc)).splitlines()]
    lines = [l for l in lines if l]
    line = lines[-1] if lines else repr(exc)
    return line[len("builtins."):] if line.startswith("builtins.") else line


try:
    import torch
except ImportError as exc:
    send({"ok": False, "error": f"{last_line(exc)}; {INSTALL_HINT}"})
    sys.exit(3)

DTYPES = {
    "BOOL": torch.bool,
    "UINT8": torch.uint8,
    "INT8": torch.int8,
    "INT16": torch.int16,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "FP16": torch.float16,
    "FP32": torch.float32,
    "FP64": torch.float64,
}
DATATYPES = {v: k for k, v in DTYPES.items()}
ELEMENT_SIZE = {d: torch.empty(0, dtype=d).element_size() for d in DTYPES.values()}


def choose_device(policy, gpu):
    available = torch.cuda.is_available()
    if policy == "cpu":
        return torch.device("cpu"), None
    if not available:
        reason = "torch.cuda.is_available() is False (torch %s, CUDA build %s)" % (
            torch.__version__,
            torch.version.cuda or "none",
        )
        if policy == "cuda":
            raise RuntimeError("device: cuda was asked for but " + reason)
        return torch.device("cpu"), reason
    index = gpu if gpu is not None else 0
    if index >= torch.cuda.device_count():
        message = "gpu %d does not exist (torch sees %d)" % (index, torch.cuda.device_count())
        if policy == "cuda":
            raise RuntimeError(message)
        return torch.device("cpu"), message
    return torch.device("cuda", index), None


def byte_view(tensor):
    """The tensor's elements as a flat uint8 numpy array on the CPU (bool as 0/1 bytes)."""
    t = tensor.detach().contiguous().cpu()
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    return t.reshape(-1).view(torch.uint8).numpy()


class PipeChannel:
    """Tensor bytes inline in the frames on stdin/stdout."""

    def read_input(self, t, load_dtype):
        data = read_exact(t["nbytes"]) if t["nbytes"] else None
        return torch.frombuffer(data, dtype=load_dtype) if data else torch.empty(0, dtype=load_dtype)

    def place_outputs(self, views, out_headers, input_headers):
        """The buffers the answer frame carries: the tensors' own memory, no copy."""
        return views


ALIGN = 64


class ShmChannel:
    """Tensor bytes in a file of /dev/shm that both processes map (the daemon reads and writes it
    with pread/pwrite); frames carry only headers."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR)
        self.map = None
        self.size = 0

    def mapped(self, end):
        """The mapping, redone when the file has grown (the daemon's writes or ours) past it."""
        if self.map is None or end > self.size:
            size = os.fstat(self.fd).st_size
            if size < end:
                size = -(-end // (1 << 20)) << 20  # grow in MiB steps
                try:
                    # Allocated now, so a full /dev/shm is an error here, not a SIGBUS on a later write.
                    os.posix_fallocate(self.fd, 0, size)
                except OSError as exc:
                    raise ShmFull(
                        "the batch does not fit in /dev/shm (%s: a container gets 64 MB unless given more, "
                        "e.g. docker run --shm-size 1g); give it more room or set backends.pytorch.channel: "
                        "pipe in helix.yaml" % os.strerror(exc.errno)
                    ) from None
            # The previous mapping stays alive as long as tensors still view it.
            self.map = mmap.mmap(self.fd, size)
            self.size = size
        return self.map

    def read_input(self, t, load_dtype):
        if not t["nbytes"]:
            return torch.empty(0, dtype=load_dtype)
        memory = self.mapped(t["offset"] + t["nbytes"])
        count = t["nbytes"] // ELEMENT_SIZE[load_dtype]
        return torch.frombuffer(memory, dtype=load_dtype, count=count, offset=t["offset"])

    def place_outputs(self, views, out_headers, input_headers):
        """Writes the outputs after the inputs, each header given its offset; the frame carries none."""
        offset = max((t["offset"] + t["nbytes"] for t in input_headers), default=0)
        for view, out in zip(views, out_headers):
            offset = -(-offset // ALIGN) * ALIGN
            out["offset"] = offset
            offset += view.nbytes
        memory = self.mapped(offset)
        for view, out in zip(views, out_headers):
            if view.nbytes:
                memory[out["offset"] : out["offset"] + view.nbytes] = view.data
        return []


def named_outputs(result, outputs):
    """Maps what forward() returned to the config's outputs: a tensor, a tuple by position, a dict by name."""
    names = [o["name"] for o in outputs]
    if isinstance(result, torch.Tensor):
        if len(names) != 1:
            raise ConfigMismatch(
                "the model returned one tensor but config.yaml declares %d outputs (%s)"
                % (len(names), ", ".join(names))
            )
        return {names[0]: result}
    if isinstance(result, (tuple, list)):
        if len(result) != len(names):
            raise ConfigMismatch(
                "the model returned %d tensors but config.yaml declares %d outputs (%s)"
                % (len(result), len(names), ", ".join(names))
            )
        return dict(zip(names, result))
    if isinstance(result, dict):
        missing = [n for n in names if n not in result]
        if missing:
            raise ConfigMismatch(
                "the model's output dict has no %s (it has %s)"
                % (", ".join(repr(m) for m in missing), ", ".join(repr(k) for k in result))
            )
        return {n: result[n] for n in names}
    raise ConfigMismatch("the model returned a %s; expected a tensor, a tuple or a dict of tensors" % type(result).__name__)


def main():
    spec = json.loads(sys.argv[1])
    try:
        channel = ShmChannel(spec["shm"]) if spec.get("shm") else PipeChannel()
        torch.set_num_threads(int(spec.get("threads") or torch.get_num_threads()))
        device, fallback = choose_device(spec.get("device", "auto"), spec.get("gpu"))
        model = torch.jit.load(spec["model"], map_location=device)
        model.eval()
    except Exception as exc:  # noqa: BLE001 - the reason goes back to the daemon
        send({"ok": False, "error": last_line(exc)})
        sys.exit(4)
    send(
        {
            "ok": True,
            "torch": torch.__version__,
            "cuda_available": torch.cuda.is_available(),
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "fallback": fallback,
        }
    )
    inputs = spec["inputs"]
    outputs = spec["outputs"]
    while True:
        raw = read_exact(4)
        if raw is None:
            return
        (length,) = struct.unpack("<I", raw)
        header = json.loads(bytes(read_exact(length)))
        tensors = {}
        for t in header["tensors"]:
            dtype = DTYPES[t["datatype"]]
            load_dtype = torch.uint8 if dtype == torch.bool else dtype
            value = channel.read_input(t, load_dtype).reshape(t["shape"])
            tensors[t["name"]] = value.to(torch.bool) if dtype == torch.bool else value
        try:
            args = [tensors[i["name"]].to(device) for i in inputs]
            with torch.inference_mode():
                result = named_outputs(model(*args), outputs)
            wanted = header.get("outputs") or [o["name"] for o in outputs]
            declared = {o["name"]: o["datatype"] for o in outputs}
            out_headers, views = [], []
            for name in wanted:
                value = result[name]
                if not isinstance(value, torch.Tensor):
                    raise ConfigMismatch("output '%s' is a %s, not a tensor" % (name, type(value).__name__))
                datatype = DATATYPES.get(value.dtype)
                if datatype != declared[name]:
                    raise ConfigMismatch(
                        "output '%s' is %s but config.yaml declares %s" % (name, value.dtype, declared[name])
                    )
                view = byte_view(value)
                out_headers.append(
                    {"name": name, "datatype": datatype, "shape": list(value.shape), "nbytes": view.nbytes}
                )
                views.append(view)
            buffers = channel.place_outputs(views, out_headers, header["tensors"])
        except Exception as exc:  # noqa: BLE001 - the reason goes back to the daemon
            send({"ok": False, "error": last_line(exc)})
            continue
        send({"ok": True, "tensors": out_headers}, buffers)


if __name__ == "__main__":
    main()
