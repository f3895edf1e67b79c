// PNG decoding as `run --image` does it: libjpeg-turbo / libpng behind the C wrappers
// (budgets, scan limit, stopping at the end of the image data), conversion to RGB, and the
// eval transform (resize and centre crop) of the decoded image.
import FuzzSupport
import Images

func fuzzImage(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    do {
        let decoded = try ImageDecoder.decode(bytes: FuzzInput.bytes(data, size), name: "input.png")
        _ = EvalTransform(imageSize: 16).crop(decoded.image)
    } catch {
        _ = error.description
    }
    return 0
}

runFuzzer { data, size in fuzzImage(data, size) }
