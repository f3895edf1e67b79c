import Images

/// JPEG or PNG decoding as `run --image` does it (the fuzz-jpeg and fuzz-png targets):
/// libjpeg-turbo / libpng behind the C wrappers (budgets, scan limit, stopping at the end of
/// the image data), conversion to RGB, and the eval transform (resize and centre crop) of the
/// decoded image. `name`'s extension is what the decoder is told the file is.
public func fuzzImageDecoding(_ data: UnsafePointer<UInt8>?, _ size: Int, name: String) -> Int32 {
    do {
        let decoded = try ImageDecoder.decode(bytes: FuzzInput.bytes(data, size), name: name)
        _ = EvalTransform(imageSize: 16).crop(decoded.image)
    } catch {
        _ = error.description
    }
    return 0
}
