import CImageCodecs

/// RGB -> PNG bytes through libpng (8-bit RGB, no interlace, default compression).
public enum PNGEncoder {
    public static func encode(_ image: RGBImage) throws(ImageError) -> [UInt8] {
        var output: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: Int(ICC_MESSAGE_SIZE))
        let status = image.pixels.withUnsafeBufferPointer { pixels in
            message.withUnsafeMutableBufferPointer { text in
                icc_png_encode_rgb(pixels.baseAddress!, Int32(image.width), Int32(image.height), &output, &size,
                                   text.baseAddress!)
            }
        }
        defer { icc_free(output) }
        guard status == Int32(ICC_OK), let output else {
            throw .encoding(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return Array(UnsafeBufferPointer(start: output, count: size))
    }
}
