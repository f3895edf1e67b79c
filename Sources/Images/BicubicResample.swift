/// PIL's `Image.resize(size, Image.BICUBIC)` for 8-bit RGB, reproduced to the bit.
///
/// DeiT's accuracy was measured on images resized by PIL, so we resize the way Pillow's
/// ImagingResample does rather than with a textbook bicubic:
/// - separable: a horizontal pass, then a vertical pass; each pass rounds and clips to uint8;
/// - the cubic kernel has a = -0.5 and support 2, stretched by the scale factor when
///   shrinking (antialiasing: every source pixel under the footprint contributes);
/// - weights are normalised to sum 1, then turned into fixed point with 22 fraction bits
///   (rounded half away from zero), accumulated in integers from a bias of 0.5 and shifted.
public enum BicubicResample {
    static let precisionBits = 22

    /// Resamples `image` to `width` x `height`. Returns the image unchanged when the size is
    /// the same (PIL copies it).
    public static func resize(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        precondition(width > 0 && height > 0)
        var current = image
        // (Pillow's horizontal pass skips rows the vertical footprints never read; resampling
        // every row gives the same values.)
        if width != image.width {
            current = resampleRows(current, Coefficients(inSize: image.width, outSize: width))
        }
        if height != image.height {
            current = resampleColumns(current, Coefficients(inSize: image.height, outSize: height))
        }
        return current
    }

    /// For each output position: the first source index, how many follow, and their weights in
    /// fixed point (`taps` per position, unused ones zero).
    struct Coefficients {
        var first: [Int] = []
        var count: [Int] = []
        var taps = 0
        var weights: [Int] = []

        init(inSize: Int, outSize: Int) {
            // Pillow derives the scale from a float box (0, 0, w, h) divided in double.
            let scale = Double(Float(inSize)) / Double(outSize)
            let filterScale = max(scale, 1.0)
            let support = 2.0 * filterScale
            taps = Int(support.rounded(.up)) * 2 + 1
            weights = [Int](repeating: 0, count: outSize * taps)
            var raw = [Double](repeating: 0, count: taps)
            // Multiplying by the reciprocal (not dividing) matters for the last bit.
            let inverseScale = 1.0 / filterScale
            for out in 0..<outSize {
                let center = (Double(out) + 0.5) * scale
                // C's (int) cast truncates toward zero; the clamp makes negative values 0 anyway.
                let low = max(Int(center - support + 0.5), 0)
                let high = min(Int(center + support + 0.5), inSize)
                let n = high - low
                var total = 0.0
                for i in 0..<n {
                    let w = cubic((Double(i + low) - center + 0.5) * inverseScale)
                    raw[i] = w
                    total += w
                }
                for i in 0..<n {
                    let normalised = total != 0 ? raw[i] / total : raw[i]
                    let scaled = normalised * Double(1 << BicubicResample.precisionBits)
                    weights[out * taps + i] = Int(normalised < 0 ? scaled - 0.5 : scaled + 0.5)
                }
                first.append(low)
                count.append(n)
            }
        }
    }

    /// Keys' cubic convolution kernel with a = -0.5, as Pillow writes it.
    static func cubic(_ value: Double) -> Double {
        let a = -0.5
        let x = abs(value)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    /// Fixed point back to a byte: Pillow shifts (floor) and clips through a lookup table.
    @inline(__always)
    static func clip(_ sum: Int) -> UInt8 {
        let v = sum >> precisionBits
        return v < 0 ? 0 : (v > 255 ? 255 : UInt8(v))
    }

    static func resampleRows(_ image: RGBImage, _ k: Coefficients) -> RGBImage {
        let outWidth = k.first.count
        var out = [UInt8](repeating: 0, count: outWidth * image.height * 3)
        let bias = 1 << (precisionBits - 1)
        image.pixels.withUnsafeBufferPointer { src in
            k.weights.withUnsafeBufferPointer { w in
                out.withUnsafeMutableBufferPointer { dst in
                    for y in 0..<image.height {
                        let row = y * image.width * 3
                        for x in 0..<outWidth {
                            var r = bias, g = bias, b = bias
                            let base = row + k.first[x] * 3
                            let taps = x * k.taps
                            for i in 0..<k.count[x] {
                                let weight = w[taps + i]
                                r += Int(src[base + 3 * i]) * weight
                                g += Int(src[base + 3 * i + 1]) * weight
                                b += Int(src[base + 3 * i + 2]) * weight
                            }
                            let o = (y * outWidth + x) * 3
                            dst[o] = clip(r)
                            dst[o + 1] = clip(g)
                            dst[o + 2] = clip(b)
                        }
                    }
                }
            }
        }
        return RGBImage(width: outWidth, height: image.height, pixels: out)
    }

    static func resampleColumns(_ image: RGBImage, _ k: Coefficients) -> RGBImage {
        let outHeight = k.first.count
        let stride = image.width * 3
        var out = [UInt8](repeating: 0, count: stride * outHeight)
        let bias = 1 << (precisionBits - 1)
        image.pixels.withUnsafeBufferPointer { src in
            k.weights.withUnsafeBufferPointer { w in
                out.withUnsafeMutableBufferPointer { dst in
                    for y in 0..<outHeight {
                        let taps = y * k.taps
                        let first = k.first[y] * stride
                        for c in 0..<stride {
                            var sum = bias
                            for i in 0..<k.count[y] {
                                sum += Int(src[first + i * stride + c]) * w[taps + i]
                            }
                            dst[y * stride + c] = clip(sum)
                        }
                    }
                }
            }
        }
        return RGBImage(width: image.width, height: outHeight, pixels: out)
    }
}
