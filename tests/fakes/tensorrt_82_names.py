"""The TensorRT 8.2 (JetPack 4.6) Python API, for the classes our fake models: 8.2 is not on PyPI.

Taken from NVIDIA's open-source TensorRT at 8.2.1: python/src/infer/pyCore.cpp (Builder,
IBuilderConfig, Runtime, ICudaEngine, IExecutionContext, IOptimizationProfile, ITimingCache,
Logger, enums) and python/src/parsers/pyOnnx.cpp (OnnxParser, ParserError); the graph and
foundational types (INetworkDefinition, ITensor, IHostMemory, DataType) and the INT8 calibrator
base from pyGraph.cpp / pyFoundationalTypes.cpp / pyInt8.cpp, and `nptype` from tensorrt/__init__.py.
Only public names; pybind11 enums also have `name` and `value`.
"""

NAMES_82 = {
    "module": """Logger ILogger Builder Runtime OnnxParser ParserError BuilderFlag NetworkDefinitionCreationFlag
        DeviceType DataType IInt8EntropyCalibrator2 IInt8Calibrator nptype IBuilderConfig ICudaEngine
        IExecutionContext IOptimizationProfile ITimingCache INetworkDefinition ITensor IHostMemory
        EngineCapability ProfilingVerbosity TacticSource QuantizationFlag ErrorCodeTRT EngineInspector
        Refitter IGpuAllocator IProfiler Profiler IErrorRecorder LayerInformationFormat AllocatorFlag
        float32 float16 int8 int32 bool""",
    "Logger": "log min_severity INTERNAL_ERROR ERROR WARNING INFO VERBOSE Severity",
    "Builder": """create_network max_batch_size platform_has_tf32 platform_has_fast_fp16 platform_has_fast_int8
        max_DLA_batch_size num_DLA_cores gpu_allocator create_optimization_profile error_recorder
        create_builder_config build_engine build_serialized_network is_network_supported logger reset""",
    "IBuilderConfig": """min_timing_iterations avg_timing_iterations int8_calibrator engine_capability max_workspace_size
        flags default_device_type DLA_core clear_flag set_flag get_flag quantization_flags clear_quantization_flag
        set_quantization_flag get_quantization_flag reset profile_stream add_optimization_profile
        set_calibration_profile get_calibration_profile num_optimization_profiles set_device_type get_device_type
        is_device_type_set reset_device_type can_run_on_DLA profiling_verbosity algorithm_selector
        set_tactic_sources get_tactic_sources create_timing_cache set_timing_cache get_timing_cache""",
    "Runtime": "deserialize_cuda_engine DLA_core num_DLA_cores gpu_allocator error_recorder logger",
    "ICudaEngine": """num_bindings get_binding_name get_binding_index binding_is_input get_binding_shape
        get_binding_dtype has_implicit_batch_dimension max_batch_size num_layers serialize create_execution_context
        get_location create_execution_context_without_device_memory device_memory_size refittable name
        num_optimization_profiles engine_capability get_profile_shape get_profile_shape_input is_shape_binding
        is_execution_binding get_binding_bytes_per_component get_binding_components_per_element
        get_binding_format get_binding_format_desc get_binding_vectorized_dim error_recorder tactic_sources
        profiling_verbosity create_engine_inspector""",
    "IExecutionContext": """execute execute_async execute_v2 execute_async_v2 debug_sync profiler engine name
        device_memory active_optimization_profile get_strides set_binding_shape get_binding_shape set_shape_input
        get_shape all_binding_shapes_specified all_shape_inputs_specified set_optimization_profile_async
        error_recorder enqueue_emits_profile report_to_profiler""",
    "IOptimizationProfile": "set_shape get_shape set_shape_input get_shape_input extra_memory_target",
    "ITimingCache": "serialize combine reset",
    "OnnxParser": """parse parse_with_weight_descriptors parse_from_file supports_operator supports_model
        num_errors get_error clear_errors""",
    "ParserError": "code desc file line func node",
    "INetworkDefinition": """num_inputs get_input num_outputs get_output num_layers get_layer mark_output name
        has_implicit_batch_dimension has_explicit_precision add_input""",
    "ITensor": "name shape dtype location is_network_input is_network_output",
    "IHostMemory": "nbytes dtype",
    "IInt8EntropyCalibrator2": """get_batch_size get_batch read_calibration_cache write_calibration_cache
        get_algorithm""",
    "DataType": "FLOAT HALF INT8 INT32 BOOL name value itemsize",
    "BuilderFlag": """FP16 INT8 DEBUG GPU_FALLBACK STRICT_TYPES REFIT DISABLE_TIMING_CACHE TF32 SPARSE_WEIGHTS
        SAFETY_SCOPE name value""",
    "DeviceType": "GPU DLA name value",
    "NetworkDefinitionCreationFlag": "EXPLICIT_BATCH EXPLICIT_PRECISION name value",
}


def names_82():
    """{class: set of public names} of TensorRT 8.2."""
    return dict((k, set(v.split())) for k, v in NAMES_82.items())
