import IR

/// Where every node's output and every kernel's scratch lives for one batch size: offsets
/// into a single arena, assigned once per graph and shape by first-fit over live intervals,
/// so running the graph allocates nothing per op.
struct MemoryPlan {
    /// Byte offset of each node's output in the arena.
    var valueOffsets: [Int]
    /// Byte offset of each node's scratch (0 bytes for most ops).
    var scratchOffsets: [Int]
    var arenaBytes: Int

    static let alignment = 64

    /// `sizes[i]` is node i's output bytes, `scratch[i]` its scratch bytes, `lastUse[i]` the
    /// index of the last node reading node i's output (`Int.max` keeps it to the end).
    static func make(sizes: [Int], scratch: [Int], lastUse: [Int]) -> MemoryPlan {
        struct Block { var offset: Int; var size: Int; var freeAfter: Int }
        var live: [Block] = []
        var valueOffsets = [Int](repeating: 0, count: sizes.count)
        var scratchOffsets = [Int](repeating: 0, count: sizes.count)
        var arena = 0

        func place(_ size: Int, freeAfter: Int) -> Int {
            let size = (size + alignment - 1) / alignment * alignment
            let sorted = live.sorted { $0.offset < $1.offset }
            var candidate = 0
            for block in sorted {
                if candidate + size <= block.offset { break }
                candidate = max(candidate, block.offset + block.size)
            }
            live.append(Block(offset: candidate, size: size, freeAfter: freeAfter))
            arena = max(arena, candidate + size)
            return candidate
        }

        for i in 0..<sizes.count {
            // Values whose last reader ran before this node are dead now.
            live.removeAll { $0.freeAfter < i }
            valueOffsets[i] = place(sizes[i], freeAfter: lastUse[i])
            if scratch[i] > 0 { scratchOffsets[i] = place(scratch[i], freeAfter: i) }
        }
        return MemoryPlan(valueOffsets: valueOffsets, scratchOffsets: scratchOffsets, arenaBytes: max(arena, alignment))
    }
}
