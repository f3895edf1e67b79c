// swift-tools-version:6.0
// idlevit: turn pretrained DeiT checkpoints into IdleViT models and prove them right.
//
// The pipeline is visible in the targets: file -> importer -> IR graph -> passes ->
// interpreter / bundle writer. C libraries sit behind thin system-library targets.
import PackageDescription

let package = Package(
    name: "idlevit",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "idlevit", targets: ["idlevit"]),
        // Reads HDF5 files in a separate process so a libhdf5 crash cannot take idlevit down.
        .executable(name: "idlevit-hdf5-reader", targets: ["idlevit-hdf5-reader"]),
        .library(name: "IdleViTKit", targets: ["IdleViTKit"]),
        // Every parser of untrusted input, for the libFuzzer targets in Fuzz/ (their own package,
        // so fuzzing never slows this build).
        .library(name: "IdleViTParsers", targets: ["IdleViTKit", "Images", "TorchImporter"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C libraries.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CProtobufC", pkgConfig: "libprotobuf-c", providers: [.apt(["libprotobuf-c-dev"])]),
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg62-turbo-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        // JPEG decode, PNG decode/encode in C: the libraries' setjmp/longjmp errors stay in C.
        .target(name: "CImageCodecs", dependencies: ["CJPEG", "CPNG"]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        // SHA-256 block compression with the x86 SHA instructions, picked at run time.
        .target(name: "CSHA256"),
        // protoc-c output for Schemas/onnx.proto (regenerate with `make onnx-proto`).
        .target(name: "COnnx", dependencies: ["CProtobufC"]),
        // The interpreter's GEMM, fused attention and FMA peak loop for AVX-512, AVX2 + FMA and
        // portable C in one binary, picked at run time. Optimised in every configuration: the
        // tests run these kernels on real shapes, and unoptimised they are ~50x slower.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),

        // The canonical graph IR: values, nodes, constants, text and JSON forms.
        .target(name: "IR"),
        // Files -> weight sets: the safetensors reader and what every importer shares.
        .target(name: "Importers", dependencies: ["IR"]),
        // What each model family is: tensor roles and names per naming scheme, architecture
        // from shapes, the dense graph, activation names, the block the IdleViT rewrite matches.
        .target(name: "ModelDescription", dependencies: ["IR", "Importers"]),
        // ONNX protobuf -> DeiT structure recognised in the op graph -> canonical weights.
        .target(name: "ONNXImporter", dependencies: ["IR", "Importers", "ModelDescription", "COnnx"]),
        // HDF5 state dicts: checks in idlevit, libhdf5 only in the reader process below.
        .target(name: "HDF5Importer", dependencies: ["IR", "Importers"]),
        .executableTarget(name: "idlevit-hdf5-reader", dependencies: ["CHDF5", "HDF5Importer", "Exporters", "IR"]),
        // PyTorch torch.save files: zip or legacy stream -> a pickle machine that builds data only.
        .target(name: "TorchImporter", dependencies: ["IR", "Importers"]),
        // IR and weights -> files: safetensors checkpoints, atomic output.
        .target(name: "Exporters", dependencies: ["IR", "Importers"]),
        // IR graph (dense or IdleViT) -> ONNX model for ONNX Runtime, written with libprotobuf-c.
        .target(name: "ONNXExporter", dependencies: ["IR", "Importers", "Exporters", "COnnx"]),
        // Graph -> graph rewrites (the IdleViT rewrite lives here).
        .target(name: "Passes", dependencies: ["IR", "ModelDescription"]),
        // CPU execution of the IR.
        .target(name: "Interpreter", dependencies: ["IR", "CBLAS", "CKernels"]),
        // Activation comparison against PyTorch references.
        .target(name: "Verification", dependencies: ["IR", "Importers", "ModelDescription", "Interpreter"]),
        // IdleViT weight bundles: one safetensors file with weights, graph, schedule, provenance.
        .target(name: "Bundle", dependencies: ["IR", "Importers", "ModelDescription", "Exporters", "Passes", "CSHA256"]),
        // Images in (JPEG/PNG -> DeiT's eval preprocessing), pictures out (the selection PNG).
        .target(name: "Images", dependencies: ["IR", "CImageCodecs"]),
        // Facade: detect a file's format, import, rewrite, run.
        .target(name: "IdleViTKit", dependencies: ["IR", "Importers", "ModelDescription", "ONNXImporter", "HDF5Importer", "TorchImporter", "Exporters", "Passes", "Bundle", "Interpreter"]),
        // Labelled image folders -> streamed, preprocessed batches -> top-1 / top-5 (`eval`, `run --image`).
        .target(name: "Evaluation", dependencies: ["IR", "Images", "Interpreter", "IdleViTKit"]),
        // The command line.
        .target(name: "IdleViTCLI", dependencies: [
            "IdleViTKit", "Importers", "TorchImporter", "ModelDescription", "Exporters", "ONNXExporter", "Interpreter", "Verification", "IR", "Images", "Evaluation",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // The FMA peak and the matrix kernels on DeiT shapes, packed vs OpenBLAS (Benchmarks/README.md).
        .executableTarget(name: "idlevit-kernel-bench", dependencies: [
            "Interpreter", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Benchmarks/KernelBench"),
        // Depending on the reader builds it next to idlevit; nothing of it is linked in.
        .executableTarget(name: "idlevit", dependencies: ["IdleViTCLI", "idlevit-hdf5-reader"]),

        .testTarget(name: "IdleViTTests", dependencies: ["IdleViTKit", "IdleViTCLI", "TorchImporter", "ModelDescription", "ONNXExporter", "Images", "Evaluation", "idlevit", "idlevit-hdf5-reader"]),
    ]
)
