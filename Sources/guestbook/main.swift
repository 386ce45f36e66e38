// A guestbook: the everyday HTTP of a small web app on one page of code —
// routes, a form, a redirect after POST, a cookie, a file upload, JSON, a
// streamed response and 404. Entries live in memory.
//
//   GET  /              the entries and the form (greets the cookie's name)
//   POST /sign          name, message and an optional file → 303 to /
//   GET  /entries.json  the entries as JSON
//   GET  /files/N       entry N's file, with its type and filename
//   GET  /stream        ?count=N lines, one every ?delay_ms=M, flushed as written
import ArgumentParser
import FastCGI
import FastCGIOptions
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

struct Entry: Codable, Sendable {
    var name: String
    var message: String
    var fileName: String?
    var fileType: String?
    var fileSize: Int?
}

/// The entries and the files, shared by every worker thread.
let book = Mutex<(entries: [Entry], files: [[UInt8]])>(([], []))

struct Guestbook: Handler {
    func process(_ request: Request) throws {
        switch (request.method, request.pathInfo) {
        case ("GET", "/"), ("HEAD", "/"): try page(request)
        case ("POST", "/sign"): try sign(request)
        case ("GET", "/entries.json"): try request.writeJSON(book.withLock { $0.entries })
        case ("GET", let path) where path.hasPrefix("/files/"): try file(request, Int(path.dropFirst(7)))
        case ("GET", "/stream"): try stream(request)
        default: throw HTTPError(.notFound)
        }
    }

    func page(_ request: Request) throws {
        let fields = try request.params  // a malformed query string is a 400
        let visitor = request.cookie("name") ?? fields["name"]?.string ?? "stranger"
        var html = "<!DOCTYPE html>\n<title>Guestbook</title>\n<h1>Hello, \(Request.escapeHTML(visitor))!</h1>\n<ul>\n"
        for (index, entry) in book.withLock({ $0.entries }).enumerated() {
            html += "<li><b>\(Request.escapeHTML(entry.name))</b>: \(Request.escapeHTML(entry.message))"
            if let fileName = entry.fileName {
                html += " (<a href=\"/files/\(index)\">\(Request.escapeHTML(fileName))</a>)"
            }
            html += "</li>\n"
        }
        html += """
            </ul>
            <form method="post" action="/sign" enctype="multipart/form-data">
            <input name="name"> <input name="message"> <input type="file" name="file"> <button>Sign</button>
            </form>

            """
        try request.write(html)
    }

    func sign(_ request: Request) throws {
        let fields = try request.params  // malformed → 400, over --max-form-bytes → 413
        guard let name = fields["name"]?.string, !name.isEmpty else { throw HTTPError(.badRequest, "a name is needed") }
        var entry = Entry(name: name, message: fields["message"]?.string ?? "")
        let upload = try request.files["file"].flatMap { $0.filename?.isEmpty == false ? $0 : nil }
        if let upload {
            entry.fileName = upload.filename
            entry.fileType = upload.contentType ?? "application/octet-stream"
            entry.fileSize = upload.body.count
        }
        book.withLock { book in
            book.entries.append(entry)
            book.files.append(upload?.body ?? [])
        }
        try request.setCookie("name", name, maxAge: 30 * 24 * 3600)
        try request.redirect(to: "/")
    }

    func file(_ request: Request, _ index: Int?) throws {
        let found: (Entry, [UInt8])? = book.withLock { book in
            guard let index, book.entries.indices.contains(index), book.entries[index].fileName != nil else { return nil }
            return (book.entries[index], book.files[index])
        }
        guard let (entry, bytes) = found else { throw HTTPError(.notFound) }
        try request.setHeader("Content-Type", entry.fileType ?? "application/octet-stream")
        let quoted = (entry.fileName ?? "file").filter { $0 != "\"" && $0 != "\\" && !$0.isNewline }
        try request.setHeader("Content-Disposition", "attachment; filename=\"\(quoted)\"")
        try request.write(bytes)
    }

    func stream(_ request: Request) throws {
        let fields = try request.params
        let count = fields["count"]?.string.flatMap { Int($0) } ?? 5
        let delay = fields["delay_ms"]?.string.flatMap { UInt32($0) } ?? 200
        try request.setHeader("Content-Type", "text/plain; charset=utf-8")
        request.setBuffering(false)
        for line in 1...max(1, min(count, 1000)) where !request.aborted {
            try request.write("line \(line)\n")
            request.flush()
            usleep(delay * 1000)
        }
    }
}

struct GuestbookCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guestbook", abstract: "A guestbook: routes, a form, a redirect, a cookie, an upload, JSON, streaming.")

    @OptionGroup var options: ServerOptions

    func run() throws {
        try options.makeServer(handlers: [.responder: .type(Guestbook.self)]).run()
    }
}

GuestbookCommand.main(ServerOptions.arguments())
