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
        resize(image, width: width, height: height, columns: 0..<width, rows: 0..<height)
    }

    /// The output columns `columns` and rows `rows` of the resize to `width` x `height`: the
    /// same bytes as resizing and then cropping, without computing the pixels the crop drops.
    /// An axis whose size does not change is only cropped.
    public static func resize(_ image: RGBImage, width: Int, height: Int, columns: Range<Int>, rows: Range<Int>) -> RGBImage {
        precondition(width > 0 && height > 0 && columns.lowerBound >= 0 && columns.upperBound <= width
                     && rows.lowerBound >= 0 && rows.upperBound <= height)
        // Like Pillow, the horizontal pass covers only the source rows the vertical pass reads.
        var vertical: Coefficients?
        var sourceRows = rows
        if height != image.height {
            let k = Coefficients(inSize: image.height, outSize: height, outputs: rows)
            sourceRows = k.sourceSpan
            vertical = k
        }
        var current: RGBImage
        if width != image.width {
            current = resampleRows(image, Coefficients(inSize: image.width, outSize: width, outputs: columns), rows: sourceRows)
        } else if columns == 0..<image.width && sourceRows == 0..<image.height {
            current = image
        } else {
            current = image.cropped(x: columns.lowerBound, y: sourceRows.lowerBound, width: columns.count, height: sourceRows.count)
        }
        if let vertical {
            current = resampleColumns(current, vertical, firstRow: sourceRows.lowerBound)
        }
        return current
    }

    /// For each output position in `outputs`: the first source index, how many follow, and
    /// their weights in fixed point (`taps` per position, unused ones zero).
    struct Coefficients {
        var first: [Int] = []
        var count: [Int] = []
        var taps = 0
        var weights: [Int] = []

        init(inSize: Int, outSize: Int, outputs: Range<Int>) {
            // Pillow derives the scale from a float box (0, 0, w, h) divided in double.
            let scale = Double(Float(inSize)) / Double(outSize)
            let filterScale = max(scale, 1.0)
            let support = 2.0 * filterScale
            taps = Int(support.rounded(.up)) * 2 + 1
            weights = [Int](repeating: 0, count: outputs.count * taps)
            var raw = [Double](repeating: 0, count: taps)
            // Multiplying by the reciprocal (not dividing) matters for the last bit.
            let inverseScale = 1.0 / filterScale
            for (position, out) in outputs.enumerated() {
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
                    weights[position * taps + i] = Int(normalised < 0 ? scaled - 0.5 : scaled + 0.5)
                }
                first.append(low)
                count.append(n)
            }
        }

        /// The source indices the positions read.
        var sourceSpan: Range<Int> {
            guard let low = first.min() else { return 0..<0 }
            return low..<zip(first, count).map { $0 + $1 }.max()!
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

    /// The horizontal pass over the source rows `rows`.
    static func resampleRows(_ image: RGBImage, _ k: Coefficients, rows: Range<Int>) -> RGBImage {
        let outWidth = k.first.count
        var out = [UInt8](repeating: 0, count: outWidth * rows.count * 3)
        let bias = 1 << (precisionBits - 1)
        image.pixels.withUnsafeBufferPointer { src in
            k.weights.withUnsafeBufferPointer { w in
                out.withUnsafeMutableBufferPointer { dst in
                    for (outRow, y) in rows.enumerated() {
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
                            let o = (outRow * outWidth + x) * 3
                            dst[o] = clip(r)
                            dst[o + 1] = clip(g)
                            dst[o + 2] = clip(b)
                        }
                    }
                }
            }
        }
        return RGBImage(width: outWidth, height: rows.count, pixels: out)
    }

    /// The vertical pass over `image`, whose first row is source row `firstRow`.
    static func resampleColumns(_ image: RGBImage, _ k: Coefficients, firstRow: Int) -> RGBImage {
        let outHeight = k.first.count
        let stride = image.width * 3
        var out = [UInt8](repeating: 0, count: stride * outHeight)
        let bias = 1 << (precisionBits - 1)
        image.pixels.withUnsafeBufferPointer { src in
            k.weights.withUnsafeBufferPointer { w in
                out.withUnsafeMutableBufferPointer { dst in
                    for y in 0..<outHeight {
                        let taps = y * k.taps
                        let first = (k.first[y] - firstRow) * stride
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
