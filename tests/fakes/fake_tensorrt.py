"""Fake `tensorrt` modules for API generations 8.2 (JetPack 4.6), 8.5 (JetPack 5), 10.x (JetPack 6/7)
and 11 (x86 only: no FP16/INT8 flags, no calibrators). Attributes exist only where that
generation documents them, so `hasattr` branches in the code under test are really exercised.
"""
import base64
import json
import time
import types

import numpy as np

GENERATIONS = ("8.2", "8.5", "10", "11")
VERSIONS = {"8.2": "8.2.1.8", "8.5": "8.5.2.2", "10": "10.3.0", "11": "11.0.0"}


class _Traced(object):
    """Records every public attribute looked up on it (found or not) in its module's `_trace`:
    what our code touched and probed (hasattr) is then compared with the real module."""
    _trace = None          # type: set
    _api_name = ""

    def __getattribute__(self, name):
        if name.startswith("_"):
            return object.__getattribute__(self, name)
        trace = object.__getattribute__(self, "_trace")
        api = object.__getattribute__(self, "_api_name") or type(self).__name__
        try:
            value = object.__getattribute__(self, name)
        except AttributeError:
            if trace is not None:
                trace.add((api, name, False))
            raise
        if trace is not None:
            trace.add((api, name, True))
        return value

    def __setattr__(self, name, value):
        # A property set (config.max_workspace_size = n) counts as touching it.
        if not name.startswith("_"):
            trace = object.__getattribute__(self, "_trace")
            if trace is not None:
                trace.add((object.__getattribute__(self, "_api_name") or type(self).__name__, name, True))
        object.__setattr__(self, name, value)


class _Module(types.ModuleType):
    def __getattribute__(self, name):
        if name.startswith("_"):
            return types.ModuleType.__getattribute__(self, name)
        trace = types.ModuleType.__getattribute__(self, "_trace")
        try:
            value = types.ModuleType.__getattribute__(self, name)
        except AttributeError:
            trace.add(("module", name, False))
            raise
        trace.add(("module", name, True))
        return value


class _Enum(_Traced):
    def __init__(self, _api_name, _trace, **members):
        self._api_name, self._trace = _api_name, _trace
        for k, v in members.items():
            setattr(self, k, v)


class _Member(object):
    """An enum member with .name, as pybind11 enums have."""

    def __init__(self, owner, name):
        self.name = name
        self._text = "{}.{}".format(owner, name)

    def __repr__(self):
        return self._text


NULLPTR = "pybind11::init(): factory function returned nullptr"


class ParserError(_Traced):
    """What OnnxParser.get_error returns (node index and message; node_name/node_operator from 10.x)."""

    def __init__(self, trace, node, desc, named, node_name="", op=""):
        self._trace, self._node, self._desc = trace, node, desc
        if named:
            self.node_name = lambda: node_name
            self.node_operator = lambda: op

    def code(self):
        return 8          # ErrorCode.UNSUPPORTED_NODE

    def desc(self):
        return self._desc

    def node(self):
        return self._node

    def file(self):
        return "builtin_op_importers.cpp"

    def line(self):
        return 0

    def func(self):
        return "importConv"

    def __str__(self):
        return "In node {} (importConv): UNSUPPORTED_NODE: {}".format(self._node, self._desc)


def _conv_needs_initializers(model):
    """TensorRT 8.2's Conv importer: weights and bias must be initializers (8.5 lifted it)."""
    inits = set(t.name for t in model.graph.initializer)
    for index, node in enumerate(model.graph.node):
        if node.op_type != "Conv":
            continue
        if len(node.input) > 1 and node.input[1] not in inits:
            return index, node, "Assertion failed: The weights tensor is required to be an initializer"
        if len(node.input) > 2 and node.input[2] and node.input[2] not in inits:
            return index, node, ("Assertion failed: The bias tensor is required to be an initializer for the "
                                 "Conv operator")
    return None


def _typed_precision(onnx_bytes):
    """What a strongly typed network computes in: Q/DQ nodes -> int8, float16 weights -> fp16."""
    import onnx
    model = onnx.load_from_string(onnx_bytes)
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"


def make_tensorrt(generation, cuda, calls):
    if generation not in GENERATIONS:
        raise ValueError(generation)
    version = VERSIONS[generation]
    has_bindings = generation in ("8.2", "8.5")
    has_named = generation in ("8.5", "10", "11")
    has_pool = generation != "8.2"
    has_workspace_attr = generation in ("8.2", "8.5")          # removed in 10.0
    has_implicit_batch = generation in ("8.2", "8.5")          # Builder.max_batch_size removed in 10.0
    has_precision_flags = generation != "11"
    has_calibrators = generation != "11"
    has_progress = generation in ("10", "11")                  # IProgressMonitor: 10.0+

    trace = set()
    mod = _Module("tensorrt")
    mod._trace = trace
    mod.__version__ = version
    mod.int8_error = 0.0      # test knobs (not TensorRT API): noise added to INT8 outputs,
    mod.fp16_error = 0.0
    mod.build_steps = 2       # and how long a build takes (steps reported to an IProgressMonitor)
    mod.step_seconds = 0.0

    def rec(name, *args):
        calls.append(name)

    class Logger(_Traced):
        _trace = trace
        VERBOSE, INFO, WARNING, ERROR, INTERNAL_ERROR = range(5)

        def __init__(self, min_severity=1):
            self.min_severity = min_severity
    mod.Logger = Logger

    DataType = _Enum("DataType", trace, **dict((n, _Member("DataType", n)) for n in ("FLOAT", "HALF", "INT8", "INT32", "BOOL")))
    mod.DataType = DataType

    def nptype(t):
        # 8.4.1-8.5.2 build the table with np.bool: AttributeError with numpy >= 1.24, as the real one.
        mapping = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8,
                   DataType.INT32: np.int32,
                   DataType.BOOL: getattr(np, "bool") if generation == "8.5" else np.bool_}
        if t in mapping:
            return mapping[t]
        raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")
    mod.nptype = nptype
    if has_named:
        mod.TensorIOMode = _Enum("TensorIOMode", trace, NONE=0, INPUT=1, OUTPUT=2)
    flag_names = dict(GPU_FALLBACK=3, REFIT=5 if generation in ("8.2", "8.5") else 4)   # STRICT_TYPES (4) went in 10
    if has_precision_flags:
        flag_names.update(FP16=0, INT8=1)
    mod.BuilderFlag = _Enum("BuilderFlag", trace, **flag_names)
    mod.DeviceType = _Enum("DeviceType", trace, GPU=0, DLA=1)
    if generation in ("8.2", "8.5"):
        mod.NetworkDefinitionCreationFlag = _Enum("NetworkDefinitionCreationFlag", trace, EXPLICIT_BATCH=0)
    elif generation == "10":
        mod.NetworkDefinitionCreationFlag = _Enum("NetworkDefinitionCreationFlag", trace, EXPLICIT_BATCH=0, STRONGLY_TYPED=1)  # EXPLICIT_BATCH ignored
    else:
        mod.NetworkDefinitionCreationFlag = _Enum("NetworkDefinitionCreationFlag", trace, STRONGLY_TYPED=0)
    if has_pool:
        mod.MemoryPoolType = _Enum("MemoryPoolType", trace, WORKSPACE=0, DLA_MANAGED_SRAM=1)

    if has_calibrators:
        class IInt8EntropyCalibrator2(object):
            def __init__(self):
                rec("IInt8EntropyCalibrator2.__init__")
                self._trt_base_initialised = True
        mod.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2

    if has_progress:
        class IProgressMonitor(object):
            def __init__(self):
                self._trt_base_initialised = True
        mod.IProgressMonitor = IProgressMonitor

    # ---- network and parser ----
    class Tensor(_Traced):
        _trace = trace
        def __init__(self, name, shape):
            self.name = name
            self.shape = tuple(shape)

    class Network(_Traced):
        _trace = trace
        def __init__(self, flags):
            self._explicit = bool(flags & 1) or not has_implicit_batch
            # 10.x: opt-in flag 1 << 1; 11: every network is strongly typed (flag value 0).
            self._strongly_typed = generation == "11" or (generation == "10" and bool(flags & 2))
            self._inputs, self._outputs, self._onnx = [], [], b""

        @property
        def num_inputs(self):
            return len(self._inputs)

        def get_input(self, i):
            return self._inputs[i]

    class OnnxParser(_Traced):
        _trace = trace
        def __init__(self, network, logger):
            rec("OnnxParser")
            self._network, self._errors = network, []

        def parse(self, data):
            rec("parser.parse")
            if not self._network._explicit:
                # The ONNX parser only supports explicit-batch networks (TensorRT 7+ docs).
                self._errors.append(ParserError(trace, -1, "Network must have explicit batch dimension", False))
                return False
            import onnx
            try:
                model = onnx.load_from_string(bytes(data))
            except Exception as exc:
                self._errors.append(ParserError(trace, -1, "Failed to parse ONNX model: {}".format(exc), has_progress))
                return False
            if generation == "8.2":
                bad = _conv_needs_initializers(model)
                if bad is not None:
                    index, node, text = bad
                    self._errors.append(ParserError(trace, index, text, False))
                    return False
            inits = set(i.name for i in model.graph.initializer)
            for vi in model.graph.input:
                if vi.name not in inits:
                    dims = [d.dim_value if d.dim_value > 0 else -1 for d in vi.type.tensor_type.shape.dim]
                    self._network._inputs.append(Tensor(vi.name, dims))
            self._network._outputs = [Tensor(o.name, ()) for o in model.graph.output]
            self._network._onnx = bytes(data)
            return True

        @property
        def num_errors(self):
            return len(self._errors)

        def get_error(self, i):
            return self._errors[i]
    mod.OnnxParser = OnnxParser

    class OptimizationProfile(_Traced):
        _trace = trace
        def __init__(self):
            self._shapes = {}

        def set_shape(self, name, lo, opt, hi):
            rec("profile.set_shape")
            self._shapes[name] = [list(lo), list(opt), list(hi)]

    class TimingCache(_Traced):
        _trace = trace
        def __init__(self, data):
            self._data = bytes(data) or b"fake-timing-cache"

        def serialize(self):
            return self._data + b"+"

    class HostMemory(_Traced):
        _trace = trace
        def __init__(self, data):
            self._data = data
            self.nbytes = len(data)

        def __bytes__(self):
            return self._data

    class BuilderConfig(_Traced):
        _trace = trace
        def __init__(self):
            self._flags, self._profiles = set(), []
            if has_calibrators:          # int8_calibrator and set_calibration_profile: gone in 11
                self.int8_calibrator = None
                self._calibration_profile = None
            self.default_device_type = mod.DeviceType.GPU
            self.DLA_core = -1
            self._timing_cache = None
            if has_progress:
                self.progress_monitor = None

        def set_flag(self, flag):
            rec("config.set_flag")
            self._flags.add(flag)

        def add_optimization_profile(self, profile):
            rec("config.add_optimization_profile")
            self._profiles.append(profile)
            return len(self._profiles) - 1

        def create_timing_cache(self, data):
            rec("config.create_timing_cache")
            return TimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            rec("config.set_timing_cache")
            self._timing_cache = cache
            return True

        def get_timing_cache(self):
            return self._timing_cache

    if has_calibrators:
        def set_calibration_profile(self, profile):   # 7.0+, deprecated 10.1, removed 11
            rec("config.set_calibration_profile")
            self._calibration_profile = profile
            return True
        BuilderConfig.set_calibration_profile = set_calibration_profile
    if has_pool:
        def set_memory_pool_limit(self, pool, size):
            rec("config.set_memory_pool_limit")
            self._pool_limit = size
        BuilderConfig.set_memory_pool_limit = set_memory_pool_limit
    if has_workspace_attr:
        _ws = property(lambda self: self.__dict__.get("_ws", 0),
                       lambda self, v: (rec("config.max_workspace_size="), self.__dict__.__setitem__("_ws", v)))
        BuilderConfig.max_workspace_size = _ws

    class Builder(_Traced):
        _trace = trace
        def __init__(self, logger):
            rec("Builder")
            if not getattr(cuda, "_has_device", True):
                raise TypeError(NULLPTR)     # the real one, after "CUDA initialization failure ... 35"
            cc = cuda._compute_capability
            self.num_DLA_cores = 2 if cc in ((7, 2), (8, 7)) else 0
            if has_implicit_batch:
                self.max_batch_size = 1
            if has_precision_flags:      # deprecated 10.5, removed 11
                self.platform_has_fast_int8 = cc in ((6, 1), (7, 2), (8, 7))

        def create_network(self, flags=0):
            calls.append("builder.create_network(flags={})".format(flags))
            return Network(flags)

        def create_builder_config(self):
            rec("builder.create_builder_config")
            return BuilderConfig()

        def create_optimization_profile(self):
            rec("builder.create_optimization_profile")
            return OptimizationProfile()

        def build_serialized_network(self, network, config):
            rec("builder.build_serialized_network")
            precision = "fp32"
            if network._strongly_typed:
                if has_precision_flags and config._flags & set([mod.BuilderFlag.FP16, mod.BuilderFlag.INT8]):
                    return None       # "precision flags are not allowed with a strongly typed network"
                precision = _typed_precision(network._onnx)
            if has_precision_flags and mod.BuilderFlag.FP16 in config._flags:
                precision = "fp16"
            if has_precision_flags and mod.BuilderFlag.INT8 in config._flags:
                precision = "int8"
                cal = config.int8_calibrator
                if cal is None or not getattr(cal, "_trt_base_initialised", False):
                    raise RuntimeError("calibrator without base __init__ (segfault in real TensorRT)")
                table = cal.read_calibration_cache()
                rec("calibrator.read_calibration_cache")
                if not table:
                    rec("calibrator.get_batch_size")
                    cal.get_batch_size()
                    name = network._inputs[0].name
                    n = 0
                    while True:
                        ptrs = cal.get_batch([name])
                        if ptrs is None:
                            break
                        n += 1
                    if n == 0:
                        return None          # TensorRT fails the build when calibration has no data
                    rec("calibrator.write_calibration_cache")
                    cal.write_calibration_cache(HostMemory(b"fake-calibration-table:%d" % n))
            monitor = getattr(config, "progress_monitor", None)
            if monitor is not None:
                monitor.phase_start("Building engine", None, mod.build_steps)
                for step in range(mod.build_steps):
                    time.sleep(mod.step_seconds)
                    if not monitor.step_complete("Building engine", step):
                        rec("monitor.cancelled")
                        monitor.phase_finish("Building engine")
                        return None
                monitor.phase_finish("Building engine")
            else:
                time.sleep(mod.step_seconds * mod.build_steps)
            if not config._profiles:
                return None
            plan = {"version": version, "precision": precision,
                    "inputs": [[t.name, list(t.shape)] for t in network._inputs],
                    "outputs": [t.name for t in network._outputs],
                    "profile": config._profiles[0]._shapes,
                    "device": "DLA" if config.default_device_type == mod.DeviceType.DLA else "GPU",
                    "dla_core": config.DLA_core,
                    "gpu_fallback": mod.BuilderFlag.GPU_FALLBACK in config._flags,
                    "onnx": base64.b64encode(network._onnx).decode("ascii")}
            return HostMemory(b"FAKEPLAN" + json.dumps(plan).encode("utf-8"))
    mod.Builder = Builder

    # ---- runtime ----
    class Engine(_Traced):
        _trace = trace
        def __init__(self, plan):
            self._plan = plan
            self._in_name = plan["inputs"][0][0]
            self._names = [self._in_name] + plan["outputs"]
            self._profile = plan["profile"][self._in_name]
            import onnxruntime as ort
            self._session = ort.InferenceSession(base64.b64decode(plan["onnx"]),
                                                providers=["CPUExecutionProvider"])
            self._shape_cache = {}

        def _output_shapes(self, in_shape):
            key = tuple(in_shape)
            if key not in self._shape_cache:
                outs = self._session.run(self._plan["outputs"], {self._in_name: np.zeros(key, np.float32)})
                self._shape_cache[key] = dict(zip(self._plan["outputs"], [o.shape for o in outs]))
            return self._shape_cache[key]

        def create_execution_context(self):
            rec("engine.create_execution_context")
            return Context(self)

    if has_bindings:
        Engine.num_bindings = property(lambda self: len(self._names))
        Engine.get_binding_name = lambda self, i: self._names[i]
        Engine.binding_is_input = lambda self, i: i == 0
        Engine.get_binding_dtype = lambda self, i: DataType.FLOAT

        def get_profile_shape(self, profile_index, binding):
            rec("engine.get_profile_shape")
            return [tuple(s) for s in self._profile]
        Engine.get_profile_shape = get_profile_shape
    if has_named:
        Engine.num_io_tensors = property(lambda self: len(self._names))
        Engine.get_tensor_name = lambda self, i: self._names[i]
        Engine.get_tensor_mode = lambda self, n: mod.TensorIOMode.INPUT if n == self._in_name \
            else mod.TensorIOMode.OUTPUT
        Engine.get_tensor_dtype = lambda self, n: DataType.FLOAT

        def get_tensor_profile_shape(self, name, profile_index):
            rec("engine.get_tensor_profile_shape")
            return [tuple(s) for s in self._profile]
        Engine.get_tensor_profile_shape = get_tensor_profile_shape

    class Context(_Traced):
        _trace = trace
        def __init__(self, engine):
            self._engine_ref = engine
            self.engine = engine
            self._in_shape = None
            self._addresses = {}

        def _valid(self, shape):
            lo, _, hi = self._engine_ref._profile
            return len(shape) == len(hi) and all(a <= s <= b for s, a, b in zip(shape, lo, hi))

        def _execute(self, addr):
            mem = cuda._memory
            shape = self._in_shape
            n = int(np.prod(shape)) * 4
            x = np.frombuffer(bytes(mem[addr[self._engine_ref._in_name]][:n]), np.float32).reshape(shape)
            outs = self._engine_ref._session.run(self._engine_ref._plan["outputs"], {self._engine_ref._in_name: x})
            prec = self._engine_ref._plan["precision"]
            rng = np.random.RandomState(0)
            for name, out in zip(self._engine_ref._plan["outputs"], outs):
                out = out.astype(np.float32)
                if prec in ("fp16", "int8"):
                    out = out.astype(np.float16).astype(np.float32)
                err = mod.int8_error if prec == "int8" else (mod.fp16_error if prec == "fp16" else 0.0)
                if err:
                    out = out + err * np.abs(out).mean() * rng.standard_normal(out.shape).astype(np.float32)
                data = np.ascontiguousarray(out).tobytes()
                mem[addr[name]][:len(data)] = data
            return True

    if has_bindings:
        def set_binding_shape(self, i, shape):
            rec("context.set_binding_shape")
            if i != 0 or not self._valid(shape):
                return False
            self._in_shape = tuple(shape)
            return True

        def get_binding_shape(self, i):
            if i == 0:
                return self._in_shape
            return self._engine_ref._output_shapes(self._in_shape)[self._engine_ref._names[i]]

        def execute_async_v2(self, bindings, stream_handle):
            rec("context.execute_async_v2")
            return self._execute(dict(zip(self._engine_ref._names, bindings)))
        Context.set_binding_shape = set_binding_shape
        Context.get_binding_shape = get_binding_shape
        Context.execute_async_v2 = execute_async_v2
    if has_named:
        def set_input_shape(self, name, shape):
            rec("context.set_input_shape")
            if name != self._engine_ref._in_name or not self._valid(shape):
                return False
            self._in_shape = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            if name == self._engine_ref._in_name:
                return self._in_shape
            return self._engine_ref._output_shapes(self._in_shape)[name]

        def set_tensor_address(self, name, ptr):
            rec("context.set_tensor_address")
            self._addresses[name] = int(ptr)
            return True

        def execute_async_v3(self, stream_handle):
            rec("context.execute_async_v3")
            return self._execute(self._addresses)
        Context.set_input_shape = set_input_shape
        Context.get_tensor_shape = get_tensor_shape
        Context.set_tensor_address = set_tensor_address
        Context.execute_async_v3 = execute_async_v3

    class Runtime(_Traced):
        _trace = trace
        def __init__(self, logger):
            rec("Runtime")
            if not getattr(cuda, "_has_device", True):
                raise TypeError(NULLPTR)

        def deserialize_cuda_engine(self, data):
            rec("runtime.deserialize_cuda_engine")
            data = bytes(data)
            if not data.startswith(b"FAKEPLAN"):
                return None
            try:
                plan = json.loads(data[len(b"FAKEPLAN"):].decode("utf-8"))
            except ValueError:
                return None
            if plan.get("version") != version:
                return None          # "Version tag does not match": logged, None returned
            return Engine(plan)
    mod.Runtime = Runtime
    return mod
