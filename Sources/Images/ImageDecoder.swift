import CImageCodecs
import IR

/// A file decoded and converted to RGB the way `PIL.Image.open(path).convert('RGB')` does,
/// because that is what timm's eval transform (and so every published DeiT accuracy) sees.
public struct DecodedImage: Sendable {
    public var image: RGBImage
    /// How the file stores its pixels, e.g. "JPEG progressive, CMYK" or "PNG 16-bit gray".
    public var storage: String
    /// Lossy conversions the user should know about (e.g. 16-bit gray clipped at 255).
    public var notes: [String]
}

public enum ImageDecoder {
    /// The budgets the C decoders check before they allocate (`Limits`).
    static let decoderLimits = icc_limits(max_pixels: Limits.imagePixels.maximum, max_bytes: Limits.imageDecodedBytes.maximum,
                                          max_scans: Int32(Limits.jpegScans.maximum))

    /// Decodes a JPEG or PNG file, recognised by its first bytes (not its extension).
    public static func decode(path: String) throws(ImageError) -> DecodedImage {
        let bytes = try readFile(path)
        return try decode(bytes: bytes, name: path)
    }

    public static func decode(bytes: [UInt8], name: String) throws(ImageError) -> DecodedImage {
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) {
            return try decodeJPEG(bytes, name: name)
        }
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            return try decodePNG(bytes, name: name)
        }
        if bytes.isEmpty { throw .corrupt(file: name, reason: "the file is empty") }
        throw .unsupported(file: name, reason: "\(recogniseOther(bytes)); only JPEG and PNG are read")
    }

    // MARK: JPEG

    private static func decodeJPEG(_ bytes: [UInt8], name: String) throws(ImageError) -> DecodedImage {
        let raw = try callCodec(bytes, name: name) { data, count, image, message in
            icc_jpeg_decode(data, count, decoderLimits, image, message)
        }
        defer { icc_free(raw.pixels) }
        let count = Int(raw.width) * Int(raw.height)
        let samples = UnsafeBufferPointer(start: raw.pixels, count: count * Int(raw.channels))
        var rgb: [UInt8]
        let kind: String
        switch Int32(raw.layout) {
        case Int32(ICC_GRAY):
            kind = "grayscale"
            rgb = [UInt8](repeating: 0, count: count * 3)
            for i in 0..<count { rgb[3 * i] = samples[i]; rgb[3 * i + 1] = samples[i]; rgb[3 * i + 2] = samples[i] }
        case Int32(ICC_RGB):
            kind = "RGB"
            rgb = Array(samples)
        case Int32(ICC_CMYK):
            // PIL reads every 4-component JPEG as Adobe-style inverted CMYK ("CMYK;I") and then
            // converts with R = (255 - K) - C (255 - K) / 255 in integer arithmetic.
            kind = raw.adobe_marker != 0 ? "CMYK (Adobe)" : "CMYK"
            // Stored samples are 255 - ink, so the "not black" factor 255 - K is the stored K.
            rgb = [UInt8](repeating: 0, count: count * 3)
            for i in 0..<count {
                let notBlack = Int(samples[4 * i + 3])
                for c in 0..<3 {
                    let ink = 255 - Int(samples[4 * i + c])
                    rgb[3 * i + c] = clip8(notBlack - mulDiv255(ink, notBlack))
                }
            }
        default:
            throw .unsupported(file: name, reason: "JPEG colour layout \(raw.layout)")
        }
        let storage = "JPEG \(raw.progressive != 0 ? "progressive" : "baseline"), \(kind)"
        return DecodedImage(image: RGBImage(width: Int(raw.width), height: Int(raw.height), pixels: rgb),
                            storage: storage, notes: [])
    }

    // MARK: PNG

    private static func decodePNG(_ bytes: [UInt8], name: String) throws(ImageError) -> DecodedImage {
        let raw = try callCodec(bytes, name: name) { data, count, image, message in
            icc_png_decode(data, count, decoderLimits, image, message)
        }
        defer { icc_free(raw.pixels) }
        let count = Int(raw.width) * Int(raw.height)
        let channels = Int(raw.channels)
        let wide = raw.bytes_per_sample == 2
        let samples = UnsafeBufferPointer(start: raw.pixels, count: count * channels * Int(raw.bytes_per_sample))
        var rgb = [UInt8](repeating: 0, count: count * 3)
        var notes: [String] = []
        // PIL keeps 16-bit gray as mode "I;16" and converts it to RGB by clipping at 255; every
        // other 16-bit PNG is unpacked by taking the high byte of each sample.
        let gray16 = wide && Int32(raw.layout) == Int32(ICC_GRAY)
        var clipped = 0
        func sample(_ index: Int) -> UInt8 {
            if !wide { return samples[index] }
            if gray16 {
                let value = Int(samples[2 * index]) << 8 | Int(samples[2 * index + 1])
                if value > 255 { clipped += 1 }
                return UInt8(min(value, 255))
            }
            return samples[2 * index]
        }
        // Alpha is dropped, not composited: convert('RGB') ignores it.
        let colour = Int32(raw.layout) == Int32(ICC_RGB) || Int32(raw.layout) == Int32(ICC_RGBA)
        for i in 0..<count {
            let base = i * channels
            if colour {
                rgb[3 * i] = sample(base)
                rgb[3 * i + 1] = sample(base + 1)
                rgb[3 * i + 2] = sample(base + 2)
            } else {
                let v = sample(base)
                rgb[3 * i] = v; rgb[3 * i + 1] = v; rgb[3 * i + 2] = v
            }
        }
        if clipped > 0 {
            notes.append("16-bit grayscale: \(clipped) of \(count) pixels above 255 clipped to 255, as PIL's convert('RGB') does")
        }
        let kinds = [0: "gray", 2: "RGB", 3: "palette", 4: "gray+alpha", 6: "RGBA"]
        var storage = "PNG \(raw.png_bit_depth)-bit \(kinds[Int(raw.png_color_type)] ?? "type \(raw.png_color_type)")"
        if raw.interlaced != 0 { storage += ", interlaced" }
        if channels == 2 || channels == 4 { storage += " (alpha dropped)" }
        return DecodedImage(image: RGBImage(width: Int(raw.width), height: Int(raw.height), pixels: rgb),
                            storage: storage, notes: notes)
    }

    // MARK: helpers

    /// Runs a C decoder on `bytes` and turns its status into an `ImageError` naming the file.
    private static func callCodec(
        _ bytes: [UInt8], name: String,
        _ body: (UnsafePointer<UInt8>, Int, UnsafeMutablePointer<icc_image>, UnsafeMutablePointer<CChar>) -> Int32
    ) throws(ImageError) -> icc_image {
        var image = icc_image()
        var message = [CChar](repeating: 0, count: Int(ICC_MESSAGE_SIZE))
        let status = bytes.withUnsafeBufferPointer { data in
            message.withUnsafeMutableBufferPointer { text in
                body(data.baseAddress!, data.count, &image, text.baseAddress!)
            }
        }
        let reason = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        switch status {
        case Int32(ICC_OK): return image
        case Int32(ICC_UNSUPPORTED): throw .unsupported(file: name, reason: reason)
        case Int32(ICC_TOO_LARGE): throw .tooLarge(file: name, reason: reason)
        default: throw .corrupt(file: name, reason: reason)
        }
    }

    /// PIL's MULDIV255: a * b / 255 rounded, in integers.
    static func mulDiv255(_ a: Int, _ b: Int) -> Int {
        let t = a * b + 128
        return ((t >> 8) + t) >> 8
    }

    static func clip8(_ v: Int) -> UInt8 { UInt8(max(0, min(255, v))) }

    private static func recogniseOther(_ bytes: [UInt8]) -> String {
        let ascii = String(decoding: bytes.prefix(12).map { $0 < 0x80 ? $0 : 0x3F }, as: UTF8.self)
        if ascii.hasPrefix("GIF8") { return "a GIF image" }
        if ascii.hasPrefix("RIFF"), ascii.dropFirst(8).hasPrefix("WEBP") { return "a WebP image" }
        if ascii.hasPrefix("BM") { return "a BMP image" }
        if bytes.starts(with: [0x49, 0x49, 0x2A, 0x00]) || bytes.starts(with: [0x4D, 0x4D, 0x00, 0x2A]) { return "a TIFF image" }
        if bytes.count >= 12, ascii.dropFirst(4).hasPrefix("ftyp") { return "an HEIF/AVIF image" }
        let hex = bytes.prefix(4).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }
        return "not a JPEG or PNG file (it starts with " + hex.joined(separator: " ") + ")"
    }
}
