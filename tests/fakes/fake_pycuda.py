"""Fake pycuda.driver: device memory is a dict of bytearrays keyed by fake pointers."""
import itertools
import types

import numpy as np


def make_pycuda(calls, gpu_name="Fake Xavier", compute_capability=(7, 2), cuda_version=(11, 4, 0)):
    mod = types.ModuleType("pycuda.driver")
    memory = {}
    next_ptr = itertools.count(0x10000, 0x10000)
    state = {"context_depth": 0, "initialised": False}

    def rec(name):
        calls.append("cuda." + name)

    def init():
        rec("init")
        state["initialised"] = True

    class _Context(object):
        def push(self):
            rec("ctx.push")
            state["context_depth"] += 1

        def pop(self):
            rec("ctx.pop")
            state["context_depth"] -= 1

    class Device(object):
        def __init__(self, ordinal):
            if not state["initialised"]:
                raise RuntimeError("cuInit has not been called")   # pycuda.driver.LogicError in real life
            self.ordinal = ordinal

        def name(self):
            return gpu_name

        def compute_capability(self):
            return compute_capability

        def retain_primary_context(self):
            rec("retain_primary_context")
            return _Context()

    class DeviceAllocation(object):
        def __init__(self, nbytes):
            self.ptr = next(next_ptr)
            self.nbytes = nbytes
            memory[self.ptr] = bytearray(nbytes)

        def __int__(self):
            return self.ptr

        __index__ = __int__

    def _need_context():
        if state["context_depth"] <= 0:
            raise RuntimeError("no CUDA context is current")   # pycuda.driver.LogicError in real life

    def mem_alloc(nbytes):
        _need_context()
        rec("mem_alloc")
        return DeviceAllocation(int(nbytes))

    def pagelocked_empty(shape, dtype):
        _need_context()
        rec("pagelocked_empty")
        return np.empty(shape, dtype)

    class Stream(object):
        def __init__(self):
            _need_context()
            rec("Stream")
            self.handle = next(next_ptr)

        def synchronize(self):
            rec("stream.synchronize")

    def memcpy_htod_async(dest, src, stream=None):
        _need_context()
        rec("memcpy_htod_async")
        data = np.ascontiguousarray(src).tobytes()
        buf = memory[int(dest)]
        if len(data) > len(buf):
            raise ValueError("copy larger than the device allocation")
        buf[:len(data)] = data

    def memcpy_dtoh_async(dest, src, stream=None):
        _need_context()
        rec("memcpy_dtoh_async")
        buf = memory[int(src)]
        flat = dest.reshape(-1).view(np.uint8)
        flat[:] = np.frombuffer(bytes(buf[:flat.size]), dtype=np.uint8)

    mod.init = init
    mod.Device = Device
    mod.DeviceAllocation = DeviceAllocation
    mod.mem_alloc = mem_alloc
    mod.pagelocked_empty = pagelocked_empty
    mod.Stream = Stream
    mod.memcpy_htod_async = memcpy_htod_async
    mod.memcpy_dtoh_async = memcpy_dtoh_async
    mod.get_version = lambda: cuda_version
    mod.get_driver_version = lambda: cuda_version[0] * 1000 + cuda_version[1] * 10
    mod._memory = memory   # test access, not pycuda API
    mod._compute_capability = compute_capability
    return mod
