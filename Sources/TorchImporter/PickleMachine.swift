import IR

/// Why a pickle was refused: what is wrong, and at which byte of the pickle.
struct PickleError: Error, Sendable {
    var message: String
    /// Offset of the opcode (in the pickle), filled in by the machine's loop.
    var offset: Int?

    init(_ message: String, offset: Int? = nil) {
        self.message = message
        self.offset = offset
    }
}

/// A pickle virtual machine that builds data and nothing else.
///
/// It runs the opcodes of protocols 0-5 over the pickle's bytes (mapped, not copied) and
/// builds the values into a `PickleHeap`. Globals are resolved by `TorchGlobals` and never
/// imported or called; REDUCE / NEWOBJ / INST / OBJ / BUILD on anything unrecognised only
/// record what was asked (`PickleObject`). Every count a pickle controls is bounded
/// (`TorchLimits`): stack, marks, memo, containers, items, string and integer widths, and the
/// opcodes executed, so a pickle cannot make it allocate or loop beyond those bounds.
struct PickleMachine {
    private var input: PickleInput
    /// Just past the last opcode read (past STOP once `run` returns).
    var position: Int { input.position }
    var heap: PickleHeap
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    private var work = 0
    /// Where a storage's bytes are, given its key and byte count (nil: resolved later, as in
    /// the legacy layout). Throws when the archive has no such storage or it is too short.
    private let locateStorage: (String, Int) throws(PickleError) -> Range<Int>?
    private let limits: PickleLimits

    init(bytes: UnsafeRawBufferPointer, start: Int = 0, heap: PickleHeap = PickleHeap(), limits: PickleLimits = PickleLimits(),
         locateStorage: @escaping (String, Int) throws(PickleError) -> Range<Int>? = { _, _ in nil }) {
        self.input = PickleInput(bytes: bytes, position: start, limits: limits)
        self.heap = heap
        self.limits = limits
        self.locateStorage = locateStorage
    }

    /// Runs to STOP and returns the pickled object; `position` is then just past the STOP.
    mutating func run() throws(PickleError) -> PickleValue {
        while true {
            let opcodeOffset = position
            do {
                if let result = try step() { return result }
            } catch {
                var located = error
                if located.offset == nil { located.offset = opcodeOffset }
                throw located
            }
        }
    }

    // MARK: - One opcode

    private mutating func step() throws(PickleError) -> PickleValue? {
        work += 1
        if work > limits.work { throw PickleError("the pickle runs more than \(limits.work) opcodes") }
        let opcode = try input.readByte()
        switch opcode {
        case 0x80: // PROTO
            let version = try input.readByte()
            guard version <= 5 else { throw PickleError("pickle protocol \(version) is newer than 5") }
        case 0x95: // FRAME: a length hint; the opcodes follow as usual.
            let length = try input.readUInt(8)
            guard length <= UInt64(input.remaining) else { throw PickleError("a frame of \(length) bytes runs past the end of the pickle") }
        case UInt8(ascii: "."): // STOP
            return try pop()
        case UInt8(ascii: "("): // MARK
            guard marks.count < limits.marks else { throw PickleError("more than \(limits.marks) nested MARKs") }
            marks.append(stack.count)
        case UInt8(ascii: "0"): // POP (a mark when the stack above it is empty, as Python does)
            if let mark = marks.last, mark == stack.count { _ = try popMark() } else { _ = try pop() }
        case UInt8(ascii: "1"): // POP_MARK
            _ = try popMark()
        case UInt8(ascii: "2"): // DUP
            try push(try top())
        case UInt8(ascii: "N"): try push(.none)
        case 0x88: try push(.bool(true))
        case 0x89: try push(.bool(false))
        case UInt8(ascii: "I"): // INT (text); I01 / I00 are True / False
            let line = try input.readLine()
            if line == "01" { try push(.bool(true)) } else if line == "00" { try push(.bool(false)) } else { try push(.int(try PickleInput.decimal(line))) }
        case UInt8(ascii: "J"): try push(.int(Int(Int32(truncatingIfNeeded: try input.readUInt(4)))))
        case UInt8(ascii: "K"): try push(.int(Int(try input.readByte())))
        case UInt8(ascii: "M"): try push(.int(Int(try input.readUInt(2))))
        case UInt8(ascii: "L"): // LONG (text), with a trailing L from Python 2
            var line = try input.readLine()
            if line.hasSuffix("L") { line.removeLast() }
            try push(.int(try PickleInput.decimal(line)))
        case 0x8a: try push(try input.longValue(count: Int(try input.readByte())))
        case 0x8b: // LONG4
            let count = Int32(truncatingIfNeeded: try input.readUInt(4))
            guard count >= 0 else { throw PickleError("LONG4 with a negative length") }
            try push(try input.longValue(count: Int(count)))
        case UInt8(ascii: "F"): // FLOAT (text)
            let line = try input.readLine()
            guard let value = Double(line) else { throw PickleError("FLOAT '\(line.escapedForMessage)' is not a number") }
            try push(.float(value))
        case UInt8(ascii: "G"): // BINFLOAT, big-endian
            let raw = try input.readRaw(8)
            var bits: UInt64 = 0
            for byte in raw { bits = bits << 8 | UInt64(byte) }
            try push(.float(Double(bitPattern: bits)))
        case UInt8(ascii: "S"): try push(.string(try PickleText.quoted(try input.readLine())))
        case UInt8(ascii: "T"): try push(.string(PickleText.bytesString(try input.readSized(signedWidth: 4))))
        case UInt8(ascii: "U"): try push(.string(PickleText.bytesString(try input.readSized(width: 1))))
        case UInt8(ascii: "V"): try push(.string(PickleText.rawUnicodeEscape(try input.readLine())))
        case UInt8(ascii: "X"): try push(.string(try PickleText.utf8(try input.readSized(width: 4))))
        case 0x8c: try push(.string(try PickleText.utf8(try input.readSized(width: 1))))
        case 0x8d: try push(.string(try PickleText.utf8(try input.readSized(width: 8))))
        case UInt8(ascii: "B"): try push(.bytes(Array(try input.readSized(width: 4))))
        case UInt8(ascii: "C"): try push(.bytes(Array(try input.readSized(width: 1))))
        case 0x8e, 0x96: try push(.bytes(Array(try input.readSized(width: 8)))) // BINBYTES8, BYTEARRAY8
        case 0x97: throw PickleError("NEXT_BUFFER: out-of-band buffers are not part of a checkpoint")
        case 0x98: _ = try top() // READONLY_BUFFER: nothing to do
        case UInt8(ascii: ")"): try push(try newTuple([]))
        case UInt8(ascii: "t"): try push(try newTuple(try popMark()))
        case 0x85: try push(try newTuple(try pop(1)))
        case 0x86: try push(try newTuple(try pop(2)))
        case 0x87: try push(try newTuple(try pop(3)))
        case UInt8(ascii: "]"): try push(try newList([]))
        case UInt8(ascii: "l"): try push(try newList(try popMark()))
        case UInt8(ascii: "}"): try push(try newDict([]))
        case UInt8(ascii: "d"): try push(try newDict(try popMark()))
        case 0x8f: try push(try newSet([]))
        case 0x91: try push(try newSet(try popMark()))
        case 0x90: try addItems(try popMark(), to: try top())
        case UInt8(ascii: "a"): let item = try pop(); try append([item], to: try top())
        case UInt8(ascii: "e"): let items = try popMark(); try append(items, to: try top())
        case UInt8(ascii: "s"): let value = try pop(), key = try pop(); try setItems([key, value], on: try top())
        case UInt8(ascii: "u"): let items = try popMark(); try setItems(items, on: try top())
        case UInt8(ascii: "c"): // GLOBAL
            let module = try input.readLine(), name = try input.readLine()
            try push(try resolveGlobal(module: module, name: name))
        case 0x93: // STACK_GLOBAL
            let name = try pop(), module = try pop()
            guard case .string(let moduleName) = module, case .string(let globalName) = name else {
                throw PickleError("STACK_GLOBAL needs two strings, got \(describe(module)) and \(describe(name))")
            }
            try push(try resolveGlobal(module: moduleName, name: globalName))
        case 0x82, 0x83, 0x84:
            throw PickleError("EXT opcodes (the copyreg extension registry) are not used by checkpoints")
        case UInt8(ascii: "R"): // REDUCE
            let arguments = try pop(), callee = try pop()
            try push(try call(callee, arguments, via: "REDUCE"))
        case 0x81: // NEWOBJ
            let arguments = try pop(), cls = try pop()
            try push(try call(cls, arguments, via: "NEWOBJ"))
        case 0x92: // NEWOBJ_EX
            let keywords = try pop(), arguments = try pop(), cls = try pop()
            let result = try call(cls, arguments, via: "NEWOBJ_EX")
            if case .object(let index) = result, case .dict(let d) = keywords {
                let pairs = zip(heap.dicts[d].keys, heap.dicts[d].values).map { ($0, $1) }
                try account(items: pairs.count)
                heap.objects[index].dictItems += pairs
            }
            try push(result)
        case UInt8(ascii: "i"): // INST: module and name inline, arguments since the mark
            let module = try input.readLine(), name = try input.readLine()
            let cls = try resolveGlobal(module: module, name: name)
            let arguments = try newTuple(try popMark())
            try push(try call(cls, arguments, via: "INST"))
        case UInt8(ascii: "o"): // OBJ: class and arguments since the mark
            var items = try popMark()
            guard !items.isEmpty else { throw PickleError("OBJ without a class") }
            let cls = items.removeFirst()
            try push(try call(cls, try newTuple(items), via: "OBJ"))
        case UInt8(ascii: "b"): // BUILD
            let state = try pop()
            try build(try top(), state: state)
        case UInt8(ascii: "P"): // PERSID (text)
            try push(try persistentLoad(.string(try input.readLine())))
        case UInt8(ascii: "Q"): // BINPERSID
            try push(try persistentLoad(try pop()))
        case UInt8(ascii: "p"): try put(try memoIndex(try input.readLine()))
        case UInt8(ascii: "q"): try put(Int(try input.readByte()))
        case UInt8(ascii: "r"): try put(Int(try input.readUInt(4)))
        case 0x94: try put(memo.count) // MEMOIZE
        case UInt8(ascii: "g"): try get(try memoIndex(try input.readLine()))
        case UInt8(ascii: "h"): try get(Int(try input.readByte()))
        case UInt8(ascii: "j"): try get(Int(try input.readUInt(4)))
        default:
            throw PickleError("unknown opcode 0x\(String(opcode, radix: 16))")
        }
        return nil
    }

    // MARK: - Stack, marks, memo

    private mutating func push(_ value: PickleValue) throws(PickleError) {
        guard stack.count < limits.stack else { throw PickleError("the pickle stack grows past \(limits.stack) values") }
        stack.append(value)
    }

    private mutating func pop() throws(PickleError) -> PickleValue {
        guard let value = stack.popLast(), stack.count >= (marks.last ?? 0) else { throw PickleError("pops from an empty stack") }
        return value
    }

    private mutating func pop(_ count: Int) throws(PickleError) -> [PickleValue] {
        guard stack.count - count >= (marks.last ?? 0) else { throw PickleError("needs \(count) values, the stack holds fewer") }
        let values = Array(stack.suffix(count))
        stack.removeLast(count)
        return values
    }

    private func top() throws(PickleError) -> PickleValue {
        guard let value = stack.last, stack.count > (marks.last ?? 0) else { throw PickleError("needs a value, the stack is empty") }
        return value
    }

    private mutating func popMark() throws(PickleError) -> [PickleValue] {
        guard let mark = marks.popLast() else { throw PickleError("no MARK to pop to") }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return items
    }

    private mutating func put(_ index: Int) throws(PickleError) {
        let value = try top()
        if memo[index] == nil, memo.count >= limits.memo {
            throw PickleError("the memo grows past \(limits.memo) entries")
        }
        memo[index] = value
    }

    private mutating func get(_ index: Int) throws(PickleError) {
        guard let value = memo[index] else { throw PickleError("memo entry \(index) was never stored") }
        try push(value)
    }

    private func memoIndex(_ line: String) throws(PickleError) -> Int {
        let index = try PickleInput.decimal(line)
        guard index >= 0 else { throw PickleError("negative memo index \(index)") }
        return index
    }

    // MARK: - Building values

    mutating func account(objects: Int = 0, items: Int) throws(PickleError) {
        heap.objectCount += objects
        heap.itemCount += items
        if heap.objectCount > limits.objects {
            throw PickleError("the pickle builds more than \(limits.objects) containers and objects")
        }
        if heap.itemCount > limits.items {
            throw PickleError("the pickle's containers hold more than \(limits.items) items")
        }
    }

    mutating func newTuple(_ items: [PickleValue]) throws(PickleError) -> PickleValue {
        try account(objects: 1, items: items.count)
        heap.tuples.append(items)
        return .tuple(heap.tuples.count - 1)
    }

    private mutating func newList(_ items: [PickleValue]) throws(PickleError) -> PickleValue {
        try account(objects: 1, items: items.count)
        heap.lists.append(items)
        return .list(heap.lists.count - 1)
    }

    private mutating func newDict(_ items: [PickleValue]) throws(PickleError) -> PickleValue {
        guard items.count % 2 == 0 else { throw PickleError("DICT with an odd number of items") }
        try account(objects: 1, items: 0)
        heap.dicts.append(PickleDict())
        let value = PickleValue.dict(heap.dicts.count - 1)
        try setItems(items, on: value)
        return value
    }

    private mutating func newSet(_ items: [PickleValue]) throws(PickleError) -> PickleValue {
        try account(objects: 1, items: items.count)
        heap.sets.append(items)
        return .set(heap.sets.count - 1)
    }

    private mutating func append(_ items: [PickleValue], to target: PickleValue) throws(PickleError) {
        try account(items: items.count)
        switch target {
        case .list(let i): heap.lists[i] += items
        case .object(let i): heap.objects[i].listItems += items
        default: throw PickleError("APPEND to \(describe(target))")
        }
    }

    private mutating func addItems(_ items: [PickleValue], to target: PickleValue) throws(PickleError) {
        try account(items: items.count)
        guard case .set(let i) = target else { throw PickleError("ADDITEMS to \(describe(target))") }
        heap.sets[i] += items
    }

    private mutating func setItems(_ items: [PickleValue], on target: PickleValue) throws(PickleError) {
        guard items.count % 2 == 0 else { throw PickleError("SETITEMS with an odd number of items") }
        try account(items: items.count / 2)
        switch target {
        case .dict(let i):
            for pair in stride(from: 0, to: items.count, by: 2) { heap.dicts[i].set(items[pair], items[pair + 1]) }
        case .object(let i):
            for pair in stride(from: 0, to: items.count, by: 2) { heap.objects[i].dictItems.append((items[pair], items[pair + 1])) }
        default:
            throw PickleError("SETITEM on \(describe(target))")
        }
    }

    /// BUILD: state for an object recorded for `inspect`; an OrderedDict's attributes
    /// (`_metadata`) and a tensor's Python state are dropped; anything else is an error.
    private mutating func build(_ target: PickleValue, state: PickleValue) throws(PickleError) {
        switch target {
        case .object(let i): heap.objects[i].state = state
        case .dict, .tensor: break
        default: throw PickleError("BUILD on \(describe(target))")
        }
    }

    private mutating func resolveGlobal(module: String, name: String) throws(PickleError) -> PickleValue {
        guard module.utf8.count <= 1024, name.utf8.count <= 1024 else { throw PickleError("a global name longer than 1024 bytes") }
        if let reason = TorchGlobals.refusal(module: module, name: name) {
            throw PickleError("refers to \(module.escapedForMessage).\(name.escapedForMessage), \(reason): refused, nothing was run")
        }
        switch TorchGlobals.resolve(module: module, name: name) {
        case .known(let known): return .known(known)
        case .dtype(let dtype): return .dtype(dtype)
        case .storageClass(let storageClass): return .storageClass(storageClass)
        case .other:
            try account(objects: 1, items: 0)
            heap.globals.append(PythonGlobal(module: module, name: name))
            return .global(heap.globals.count - 1)
        }
    }

    /// REDUCE, NEWOBJ, INST, OBJ: recognised globals build data, anything else is recorded.
    private mutating func call(_ callee: PickleValue, _ arguments: PickleValue, via: String) throws(PickleError) -> PickleValue {
        switch callee {
        case .known(let known):
            guard case .tuple(let t) = arguments else { throw PickleError("\(via) of \(describe(callee)) with \(describe(arguments)) instead of an argument tuple") }
            return try TorchCalls.call(known, heap.tuples[t], machine: &self)
        case .storageClass, .dtype:
            throw PickleError("\(via) calls \(describe(callee)): a checkpoint never constructs one")
        default:
            try account(objects: 1, items: 1)
            heap.objects.append(PickleObject(callee: callee, via: via, arguments: arguments))
            return .object(heap.objects.count - 1)
        }
    }

    private mutating func persistentLoad(_ pid: PickleValue) throws(PickleError) -> PickleValue {
        try TorchCalls.persistentLoad(pid, heap: &heap, locate: locateStorage)
    }

    /// A value named for an error message.
    func describe(_ value: PickleValue) -> String {
        PickleDescription.kind(value, heap: heap)
    }
}

extension String {
    var trimmingSpaces: Substring {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " || s.last == "\r" { s.removeLast() }
        return s
    }
}
