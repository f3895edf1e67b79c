/// What a `GLOBAL` / `STACK_GLOBAL` / `INST` name means to idlevit.
///
/// Nothing is ever imported or called. The handful of globals torch checkpoints use to
/// describe tensors and containers are recognised and build data; every other global is a
/// name (an inert placeholder `inspect` can show, like `argparse.Namespace`). Globals that
/// exist to run commands, evaluate code, import modules or open files have no place in a
/// checkpoint: a pickle naming one is refused outright, so a booby-trapped file is reported
/// as such rather than loading with its payload sitting inert in a corner.
///
/// That list is a courtesy, for a clear message; it can never be complete (the hostile
/// fixtures use `logging.FileHandler`, which creates a file and is not on it). Safety comes
/// from the machine never calling anything.
enum TorchGlobals {
    enum Resolution {
        case known(KnownGlobal)
        case dtype(TorchDType)
        case storageClass(StorageClass)
        case other
    }

    static func resolve(module: String, name: String) -> Resolution {
        switch (module, name) {
        case ("collections", "OrderedDict"): return .known(.orderedDict)
        case ("torch._utils", "_rebuild_tensor"): return .known(.rebuildTensor)
        case ("torch._utils", "_rebuild_tensor_v2"): return .known(.rebuildTensorV2)
        case ("torch._utils", "_rebuild_tensor_v3"): return .known(.rebuildTensorV3)
        case ("torch._utils", "_rebuild_parameter"): return .known(.rebuildParameter)
        case ("torch._utils", "_rebuild_parameter_with_state"): return .known(.rebuildParameterWithState)
        case ("torch._tensor", "_rebuild_from_type_v2"), ("torch._utils", "_rebuild_from_type_v2"): return .known(.rebuildFromTypeV2)
        case ("torch", "Size"): return .known(.torchSize)
        case ("torch", "Tensor"), ("torch._tensor", "Tensor"), ("torch.nn.parameter", "Parameter"), ("torch.nn", "Parameter"):
            return .known(.tensorClass("\(module).\(name)"))
        case ("torch", "UntypedStorage"), ("torch.storage", "UntypedStorage"), ("torch", "TypedStorage"):
            return .storageClass(.untyped)
        default:
            break
        }
        if module == "torch" || module == "torch.cuda" {
            if let dtype = TorchDType.storageClass(named: name) { return .storageClass(.typed(dtype)) }
        }
        if module == "torch", let dtype = TorchDType.dtype(named: name) { return .dtype(dtype) }
        return .other
    }

    /// Why a global is refused, or nil when it may stand as an inert name.
    static func refusal(module: String, name: String) -> String? {
        // The module and every package above it: os.path is refused with os, torch.hub.x with torch.hub.
        let parts = module.split(separator: ".", omittingEmptySubsequences: false)
        let enclosing = parts.indices.map { parts[...$0].joined(separator: ".") }
        if enclosing.contains(where: refusedModules.contains) {
            return "a module that runs commands, evaluates code or touches files"
        }
        if (module == "builtins" || module == "__builtin__"), refusedBuiltins.contains(name) {
            return "a builtin that evaluates code, imports modules or opens files"
        }
        if refusedFunctions.contains("\(module).\(name)") {
            return "a function that loads code or opens files"
        }
        return nil
    }

    /// Modules (and packages) refused whatever the name.
    private static let refusedModules: Set<String> = [
        "os", "posix", "nt", "subprocess", "_posixsubprocess", "pty", "shutil", "socket", "importlib",
        "runpy", "ctypes", "pickle", "_pickle", "marshal", "code", "codeop", "webbrowser", "commands",
        "pdb", "sys", "multiprocessing", "asyncio.subprocess", "popen2", "platform", "posixpath", "ntpath",
        "_io", "imp", "zipimport", "dill", "cloudpickle", "timeit", "trace", "profile", "cProfile", "pydoc",
        "doctest", "idlelib", "tempfile", "_ctypes", "cffi", "torch.hub", "torch.jit", "torch.package",
    ]

    private static let refusedBuiltins: Set<String> = [
        "eval", "exec", "execfile", "compile", "__import__", "open", "file", "input", "raw_input",
        "breakpoint", "exit", "quit", "globals", "locals", "vars", "setattr", "delattr", "reload",
        "__loader__", "__spec__", "memoryview",
    ]

    private static let refusedFunctions: Set<String> = [
        "io.open", "io.FileIO", "io.open_code", "codecs.open", "torch.load", "torch.jit.load",
        "torch.hub.load", "torch.hub.load_state_dict_from_url", "torch.serialization.load",
        "numpy.load", "numpy.fromfile", "numpy.loadtxt", "operator.methodcaller", "operator.attrgetter",
        "types.FunctionType", "types.CodeType",
        "torch._C._load_for_lite_interpreter", "torch.storage._load_from_bytes",
    ]
}
