/// Where every value and every kernel's scratch lives for one program (graph, batch size,
/// captured set): offsets into a single arena, assigned once by first-fit over live
/// intervals, so running the graph allocates nothing per op.
///
/// A value may also take over the block of a value that dies at the instruction producing
/// it (`alias`), which is how `scatter_tokens` and fused residual adds write in place.
struct MemoryPlan {
    /// Byte offset of each value in the arena (values that are never stored keep 0).
    var valueOffsets: [Int]
    /// Byte offset of each instruction's scratch (0 bytes for most ops).
    var scratchOffsets: [Int]
    var arenaBytes: Int

    static let alignment = 64

    struct Request {
        /// The value this instruction writes, its bytes and the last instruction reading it
        /// (`Int.max` keeps it to the end).
        var value: Int
        var bytes: Int
        var lastUse: Int
        /// A value dying here whose block the output may reuse.
        var alias: Int?
        var scratchBytes: Int
    }

    static func make(values: Int, requests: [Request]) -> MemoryPlan {
        struct Block { var offset: Int; var size: Int; var freeAfter: Int; var owner: Int }
        var live: [Block] = []
        var valueOffsets = [Int](repeating: 0, count: values)
        var scratchOffsets = [Int](repeating: 0, count: requests.count)
        var arena = 0

        func place(_ size: Int, freeAfter: Int, owner: Int) -> Int {
            let size = (size + alignment - 1) / alignment * alignment
            let sorted = live.sorted { $0.offset < $1.offset }
            var candidate = 0
            for block in sorted {
                if candidate + size <= block.offset { break }
                candidate = max(candidate, block.offset + block.size)
            }
            live.append(Block(offset: candidate, size: size, freeAfter: freeAfter, owner: owner))
            arena = max(arena, candidate + size)
            return candidate
        }

        for (i, request) in requests.enumerated() {
            // Values whose last reader ran before this instruction are dead now.
            live.removeAll { $0.freeAfter < i }
            if let alias = request.alias, let index = live.firstIndex(where: { $0.owner == alias }),
               live[index].size >= request.bytes {
                live[index].owner = request.value
                live[index].freeAfter = request.lastUse
                valueOffsets[request.value] = live[index].offset
            } else {
                valueOffsets[request.value] = place(request.bytes, freeAfter: request.lastUse, owner: request.value)
            }
            if request.scratchBytes > 0 { scratchOffsets[i] = place(request.scratchBytes, freeAfter: i, owner: -1) }
        }
        return MemoryPlan(valueOffsets: valueOffsets, scratchOffsets: scratchOffsets, arenaBytes: max(arena, alignment))
    }
}
