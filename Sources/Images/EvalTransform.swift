/// timm's evaluation transform for DeiT (IDLEVIT.md §1.7), generalised to any image size:
///
///     Resize(floor(S / crop_pct), BICUBIC)  shorter side, aspect kept (torchvision rules)
///     CenterCrop(S)                         offsets round((h - S) / 2), half to even
///     ToTensor()                            uint8 / 255 in Float32, HWC -> CHW
///     Normalize(mean, std)                  (x - mean) / std in Float32
///
/// S is the model's image size. DeiT's crop_pct is 0.875, so S = 224 resizes to 256. (timm's
/// pretrained configs for the 384-px DeiT models use crop_pct 1.0: pass it explicitly.)
public struct EvalTransform: Sendable {
    public var imageSize: Int
    public var cropPercent: Double
    /// ImageNet statistics, the values timm's `IMAGENET_DEFAULT_MEAN/STD` hold.
    public var mean: [Double] = [0.485, 0.456, 0.406]
    public var std: [Double] = [0.229, 0.224, 0.225]

    public static let deitCropPercent = 0.875

    public init(imageSize: Int, cropPercent: Double = EvalTransform.deitCropPercent) {
        precondition(imageSize > 0 && cropPercent > 0 && cropPercent <= 1)
        self.imageSize = imageSize
        self.cropPercent = cropPercent
    }

    /// The shorter side after resizing: timm's `math.floor(img_size / crop_pct)`.
    public var resizeSize: Int { Int((Double(imageSize) / cropPercent).rounded(.down)) }

    /// torchvision's `Resize(int)` size rule: the shorter side becomes `resizeSize`, the longer
    /// one `int(resizeSize * long / short)` (truncated), evaluated in double as Python does.
    public func resizedSize(width: Int, height: Int) -> (width: Int, height: Int) {
        let short = min(width, height), long = max(width, height)
        let newLong = Int(Double(resizeSize * long) / Double(short))
        return width <= height ? (resizeSize, newLong) : (newLong, resizeSize)
    }

    /// torchvision's centre-crop offset: `int(round((size - crop) / 2.0))`, and Python's
    /// round() sends halves to the even neighbour (58.5 -> 58, 59.5 -> 60).
    public static func cropOffset(size: Int, crop: Int) -> Int {
        Int((Double(size - crop) / 2).rounded(.toNearestOrEven))
    }

    /// Resize and centre-crop: the `imageSize` x `imageSize` RGB the model sees.
    public func crop(_ image: RGBImage) -> RGBImage {
        let target = resizedSize(width: image.width, height: image.height)
        let left = EvalTransform.cropOffset(size: target.width, crop: imageSize)
        let top = EvalTransform.cropOffset(size: target.height, crop: imageSize)
        // Only the crop is resampled. (torchvision returns the image untouched when it already
        // has the target size; resize leaves an unchanged axis alone too.)
        return BicubicResample.resize(image, width: target.width, height: target.height,
                                      columns: left..<(left + imageSize), rows: top..<(top + imageSize))
    }

    /// ToTensor + Normalize of a crop: [3, S, S] channel-major floats, appended to `values`.
    /// It does not reserve capacity itself: reserving `count + 3 S^2` on every call defeats the
    /// array's geometric growth and copies the whole batch once per image. Callers appending a
    /// batch reserve it once.
    public func normalise(_ crop: RGBImage, into values: inout [Float]) {
        precondition(crop.width == imageSize && crop.height == imageSize)
        let plane = imageSize * imageSize
        for c in 0..<3 {
            // torch turns the Python doubles into Float32 tensors before subtracting/dividing.
            let m = Float(mean[c]), s = Float(std[c])
            for i in 0..<plane {
                let x = Float(crop.pixels[3 * i + c]) / 255
                values.append((x - m) / s)
            }
        }
    }

    /// The whole transform: the `pixel_values` of one image, [3, S, S].
    public func pixelValues(_ image: RGBImage) -> [Float] {
        var values: [Float] = []
        values.reserveCapacity(3 * imageSize * imageSize)
        normalise(crop(image), into: &values)
        return values
    }
}
