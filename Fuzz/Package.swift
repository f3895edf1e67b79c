// swift-tools-version:6.0
// libFuzzer targets for idlevit's parsers of untrusted input. A package of its own, so that
// `swift build` / `make test` of the main package never build or run them.
//
//     make fuzz SECONDS=600 [TARGET=safetensors]      (see Fuzz/README.md)
//
// Built with `swift build -c release -Xswiftc -sanitize=fuzzer,address` (Fuzz/run.sh): every
// module, idlevit's and these, is instrumented for coverage; each target's main hands its
// callback to libFuzzer's driver.
import PackageDescription

let targets = ["safetensors", "bundle", "onnx", "hdf5", "jpeg", "png", "pth"]

let package = Package(
    name: "idlevit-fuzz",
    platforms: [.macOS(.v13)],
    dependencies: [.package(name: "idlevit", path: "..")],
    targets: [
        // Writing the input to a file (the importers read files), and libFuzzer's driver.
        .target(name: "CFuzzDriver"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzDriver", .product(name: "IdleViTParsers", package: "idlevit")]),
    ] + targets.map { name in
        .executableTarget(name: "fuzz-\(name)", dependencies: [
            "FuzzSupport", .product(name: "IdleViTParsers", package: "idlevit"),
        ])
    }
)
