/// Drawing primitives on an `RGBImage`: what the selection picture needs and nothing more.
extension RGBImage {
    /// Fills the rectangle, clipped to the image.
    public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, colour: RGB) {
        let x0 = max(0, x), y0 = max(0, y)
        let x1 = min(width, x + w), y1 = min(height, y + h)
        guard x0 < x1, y0 < y1 else { return }
        for row in y0..<y1 {
            for column in x0..<x1 { self[column, row] = colour }
        }
    }

    /// Copies `source` with its top-left corner at (x, y), clipped to the image.
    public mutating func paste(_ source: RGBImage, x: Int, y: Int) {
        for row in 0..<source.height where y + row >= 0 && y + row < height {
            for column in 0..<source.width where x + column >= 0 && x + column < width {
                self[x + column, y + row] = source[column, row]
            }
        }
    }

    /// Draws `text` in the built-in 5x7 font, each font pixel a `scale` x `scale` square.
    public mutating func draw(text: String, x: Int, y: Int, scale: Int, colour: RGB) {
        var left = x
        for character in text {
            let rows = BitmapFont.rows(for: character)
            for (r, bits) in rows.enumerated() {
                for c in 0..<BitmapFont.glyphWidth where bits & (1 << (BitmapFont.glyphWidth - 1 - c)) != 0 {
                    fill(x: left + c * scale, y: y + r * scale, width: scale, height: scale, colour: colour)
                }
            }
            left += BitmapFont.advance * scale
        }
    }
}
