/// The picture `idlevit visualize` writes: the centre crop the model saw, then one panel per idle
/// layer in which the patches that layer computed keep their colours inside an outline and the
/// idle ones are dimmed. Panels sit in a grid under a header line, each with a title above it.
public struct SelectionPicture {
    public struct Panel: Sendable {
        public var title: String
        /// Selected patch indices (row-major in the patch grid); nil shows the crop undimmed.
        public var selectedPatches: Set<Int>?

        public init(title: String, selectedPatches: Set<Int>?) {
            self.title = title
            self.selectedPatches = selectedPatches
        }
    }

    /// Where a panel landed, for callers (and tests) that look at its pixels.
    public struct Placement: Equatable, Sendable {
        public var x: Int
        public var y: Int
    }

    public static let background = RGB(24, 24, 28)
    public static let titleColour = RGB(240, 240, 240)
    public static let outlineColour = RGB(255, 196, 0)
    /// Idle pixels keep this fraction of their value (in 1/256): dark enough to read as "off",
    /// light enough that the scene stays recognisable.
    public static let dimming = 72
    /// Outline thickness in pixels, drawn inside the selected patches' border pixels.
    public static let outlineWidth = 2
    static let gap = 10
    static let textScale = 2
    static var titleHeight: Int { BitmapFont.glyphHeight * textScale + 8 }

    public let crop: RGBImage
    public let patchSize: Int
    public let header: String
    public let panels: [Panel]
    public let columns: Int

    public init(crop: RGBImage, patchSize: Int, header: String, panels: [Panel], columns: Int = 5) {
        precondition(crop.width % patchSize == 0 && crop.height % patchSize == 0)
        self.crop = crop
        self.patchSize = patchSize
        self.header = header
        self.panels = panels
        self.columns = max(1, min(columns, panels.count))
    }

    var rows: Int { (panels.count + columns - 1) / columns }

    /// Top-left corner of panel `index`'s image area (below its title).
    public func placement(of index: Int) -> Placement {
        let column = index % columns, row = index / columns
        return Placement(x: SelectionPicture.gap + column * (crop.width + SelectionPicture.gap),
                         y: SelectionPicture.titleHeight + SelectionPicture.gap
                            + row * (SelectionPicture.titleHeight + crop.height + SelectionPicture.gap)
                            + SelectionPicture.titleHeight)
    }

    public var width: Int { SelectionPicture.gap + columns * (crop.width + SelectionPicture.gap) }
    public var height: Int {
        SelectionPicture.titleHeight + SelectionPicture.gap + rows * (SelectionPicture.titleHeight + crop.height + SelectionPicture.gap)
    }

    public func render() -> RGBImage {
        var canvas = RGBImage(width: width, height: height, fill: SelectionPicture.background)
        let scale = SelectionPicture.textScale
        canvas.draw(text: fitted(header, width: width - 2 * SelectionPicture.gap), x: SelectionPicture.gap,
                    y: SelectionPicture.gap / 2 + 4, scale: scale, colour: SelectionPicture.titleColour)
        for (index, panel) in panels.enumerated() {
            let place = placement(of: index)
            canvas.draw(text: fitted(panel.title, width: crop.width), x: place.x,
                        y: place.y - SelectionPicture.titleHeight + 3, scale: scale, colour: SelectionPicture.titleColour)
            canvas.paste(render(panel), x: place.x, y: place.y)
        }
        return canvas
    }

    /// The crop with idle patches dimmed and the outline of the selected region drawn.
    func render(_ panel: Panel) -> RGBImage {
        guard let selected = panel.selectedPatches else { return crop }
        var image = crop
        let perRow = crop.width / patchSize, perColumn = crop.height / patchSize
        func isSelected(_ row: Int, _ column: Int) -> Bool {
            row >= 0 && row < perColumn && column >= 0 && column < perRow && selected.contains(row * perRow + column)
        }
        for row in 0..<perColumn {
            for column in 0..<perRow {
                let x0 = column * patchSize, y0 = row * patchSize
                if !isSelected(row, column) {
                    for y in y0..<(y0 + patchSize) {
                        for x in x0..<(x0 + patchSize) {
                            let i = (y * image.width + x) * 3
                            for c in 0..<3 {
                                image.pixels[i + c] = UInt8((Int(image.pixels[i + c]) * SelectionPicture.dimming + 128) >> 8)
                            }
                        }
                    }
                    continue
                }
                // Outline only the edges that face an idle patch or the border, so a group of
                // selected patches reads as one region rather than a grid.
                let t = SelectionPicture.outlineWidth, colour = SelectionPicture.outlineColour
                if !isSelected(row - 1, column) { image.fill(x: x0, y: y0, width: patchSize, height: t, colour: colour) }
                if !isSelected(row + 1, column) { image.fill(x: x0, y: y0 + patchSize - t, width: patchSize, height: t, colour: colour) }
                if !isSelected(row, column - 1) { image.fill(x: x0, y: y0, width: t, height: patchSize, colour: colour) }
                if !isSelected(row, column + 1) { image.fill(x: x0 + patchSize - t, y: y0, width: t, height: patchSize, colour: colour) }
            }
        }
        return image
    }

    /// `text` cut with "..." to fit `width` pixels at the title scale.
    func fitted(_ text: String, width: Int) -> String {
        let scale = SelectionPicture.textScale
        if BitmapFont.width(of: text, scale: scale) <= width { return text }
        var cut = text
        while !cut.isEmpty && BitmapFont.width(of: cut + "...", scale: scale) > width { cut.removeLast() }
        return cut + "..."
    }
}
