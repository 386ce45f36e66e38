// A Hummingbird router served over FastCGI: `GET /hello/{name}` greets,
// `GET /slow` answers after a 1 s await, `POST /echo` sends the body back.
// It takes the same options as the other examples (`--bind ADDRESS`,
// `--threading-level`, …).
import ArgumentParser
import FastCGI
import FastCGIOptions
import Foundation
import Hummingbird
import HummingbirdFastCGI

/// The app's routes.
func makeRouter() -> Router<BasicFastCGIRequestContext> {
    // HEAD answered as GET without the body, as Hummingbird's own server does.
    let router = Router(context: BasicFastCGIRequestContext.self, options: .autoGenerateHeadEndpoints)
    router.get("/hello/{name}") { _, context in
        // A parameter is the raw path segment: `/hello/Zo%C3%AB` greets Zoë.
        let name = try context.parameters.require("name").removingPercentEncoding ?? ""
        return Response(
            status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: "Hello, \(name)!\n")))
    }
    router.get("/slow") { _, _ in
        // A slow dependency (a database, another service): no thread is held
        // while it awaits, and the default threading level does not bound it.
        try await Task.sleep(for: .seconds(1))
        return "done\n"
    }
    router.post("/echo") { request, _ in
        // Streamed back as it is read. The library holds the output until the
        // body has all arrived (nginx sends no more of a body once it has the
        // response's head), up to `RequestLimits.maxOutputBeforeBodyEnd`.
        Response(
            status: .ok, headers: [.contentType: request.headers[.contentType] ?? "application/octet-stream"],
            body: ResponseBody(asyncSequence: request.body))
    }
    return router
}

struct HBHelloCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hb-hello", abstract: "A Hummingbird router served over FastCGI.")

    @OptionGroup var options: ServerOptions

    func run() throws {
        try options.makeServer(handlers: [.responder: .hummingbird(makeRouter())]).run()
    }
}

HBHelloCommand.main(ServerOptions.arguments())
