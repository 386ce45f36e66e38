#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The program a process manager starts its workers from: the path it was
/// started as, made absolute against the directory it was started in, never
/// resolved through symlinks — so a deploy that swaps a symlink
/// (`current -> releases/v2`) and sends SIGHUP gets the new release, as one
/// that replaces the file in place does.
struct Executable: Sendable, Hashable {
    /// The path the workers are started from.
    let path: String

    /// The path `argv0` named, or `binary` when given: absolute against the
    /// start directory; a bare name as `PATH` found it; nil when neither
    /// names an executable file (then `/proc/self/exe` is the fallback).
    static func launchPath(argv0: String?, binary: String?) -> Executable? {
        let directory = currentDirectory() ?? "/"
        func absolute(_ path: String) -> String { path.hasPrefix("/") ? path : directory + "/" + path }
        if let binary { return Executable(path: absolute(binary)) }
        guard let argv0, !argv0.isEmpty else { return nil }
        if argv0.contains("/") { return Executable(path: absolute(argv0)) }
        let search = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for entry in search.split(separator: ":") {
            let candidate = absolute("\(entry)/\(argv0)")
            if access(candidate, X_OK) == 0 { return Executable(path: candidate) }
        }
        return nil
    }

    private static func currentDirectory() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Whether `path` is the program this process runs (symlinks resolved).
    static func isThisProgram(_ path: String) -> Bool {
        guard let own = running, let resolved = resolved(path) else { return false }
        return resolved == own
    }

    /// This process's program, resolved (read once).
    private static let running = resolved("/proc/self/exe")

    /// The file the path leads to now (symlinks resolved), for the log.
    var target: String? { Self.resolved(path) }

    /// `path` with every symlink resolved (`realpath`), nil if it leads nowhere.
    private static func resolved(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The ELF build id of the file at the path now (`NT_GNU_BUILD_ID`, as
    /// `readelf -n` and `file` print it), nil when it has none or is not ELF.
    var buildID: String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        func read(_ count: Int, at offset: Int) -> [UInt8]? {
            guard count > 0, count <= 1 << 20 else { return nil }
            var bytes = [UInt8](repeating: 0, count: count)
            let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
            return got == count ? bytes : nil
        }
        func integer(_ bytes: [UInt8], _ at: Int, _ size: Int) -> Int {
            (0..<size).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) }  // little-endian, as on x86_64 and arm64
        }
        // ELF64, little-endian: the program headers, then each PT_NOTE's notes.
        guard let header = read(64, at: 0), header[0..<4] == [0x7F, 0x45, 0x4C, 0x46], header[4] == 2, header[5] == 1
        else { return nil }
        let tableOffset = integer(header, 0x20, 8)
        let entrySize = integer(header, 0x36, 2)
        let entries = integer(header, 0x38, 2)
        guard entrySize >= 56, let table = read(entrySize * entries, at: tableOffset) else { return nil }
        for index in 0..<entries {
            let entry = index * entrySize
            guard integer(table, entry, 4) == 4,  // PT_NOTE
                let notes = read(integer(table, entry + 0x20, 8), at: integer(table, entry + 0x08, 8))
            else { continue }
            var at = 0
            while at + 12 <= notes.count {
                let nameSize = integer(notes, at, 4)
                let descSize = integer(notes, at + 4, 4)
                let type = integer(notes, at + 8, 4)
                let name = at + 12
                let desc = name + (nameSize + 3) / 4 * 4
                guard desc + descSize <= notes.count else { break }
                if type == 3, nameSize == 4, notes[name..<name + 3] == [0x47, 0x4E, 0x55] {  // "GNU", NT_GNU_BUILD_ID
                    return notes[desc..<desc + descSize].map { String($0, radix: 16).leftPadded(to: 2) }.joined()
                }
                at = desc + (descSize + 3) / 4 * 4
            }
        }
        return nil
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
