// A Vapor application served over FastCGI: `GET /hello/:name` greets,
// `GET /slow` answers after a 1 s await, `POST /todos` and `GET /todos/:id`
// take and give JSON, `POST /echo` sends the body back through a streamed
// response, and `GET /teapot` throws an `Abort`. It takes the same options as
// the other examples (`--bind ADDRESS`, `--threading-level`, …).
import ArgumentParser
import FastCGI
import FastCGIOptions
import Vapor
import VaporFastCGI

/// A to-do item, as JSON.
struct Todo: Content {
    var id: Int?
    var title: String
    var done: Bool?
}

/// The to-do items this process has been given.
actor TodoStore {
    private var items: [Int: Todo] = [:]

    func add(_ todo: Todo) -> Todo {
        var todo = todo
        todo.id = items.count + 1
        todo.done = todo.done ?? false
        items[todo.id!] = todo
        return todo
    }

    func todo(_ id: Int) -> Todo? { items[id] }
}

/// The app's routes: what a Vapor app's `configure` registers, unchanged.
func routes(_ app: Application) {
    let todos = TodoStore()
    app.get("hello", ":name") { req -> String in
        // Vapor's route parameters are decoded: `/hello/Zo%C3%AB` greets Zoë.
        "Hello, \(try req.parameters.require("name"))!\n"
    }
    app.get("slow") { _ async throws -> String in
        // A slow dependency (a database, another service): no thread is held
        // while it awaits, and the default threading level does not bound it.
        try await Task.sleep(for: .seconds(1))
        return "done\n"
    }
    app.post("todos") { req async throws -> Response in
        let todo = await todos.add(try req.content.decode(Todo.self))
        return try await todo.encodeResponse(status: .created, for: req)
    }
    app.get("todos", ":id") { req async throws -> Todo in
        guard let id = req.parameters.get("id", as: Int.self) else { throw Abort(.badRequest, reason: "not a number") }
        guard let todo = await todos.todo(id) else { throw Abort(.notFound, reason: "no to-do \(id)") }
        return todo
    }
    app.on(.POST, "echo", body: .stream) { req -> Response in
        // The body back through a streamed response, chunk by chunk.
        let type = req.headers.first(name: .contentType) ?? "application/octet-stream"
        return Response(
            status: .ok, headers: ["Content-Type": type],
            body: .init(managedAsyncStream: { writer in
                for try await chunk in req.body { try await writer.writeBuffer(chunk) }
            }))
    }
    app.get("teapot") { _ -> String in
        // Vapor's ErrorMiddleware answers it as JSON with its status.
        throw Abort(.imATeapot, reason: "short and stout")
    }
}

struct VaporHelloCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vapor-hello", abstract: "A Vapor application served over FastCGI.")

    @OptionGroup var options: ServerOptions

    /// Serves the app until the server stops (SIGTERM, SIGINT), then shuts it down.
    func serve() async throws {
        let app = try await Application.make(.production)
        routes(app)
        // The lifecycle handlers' willBoot and didBoot; Vapor's own HTTP server
        // is never started (no `app.execute()`).
        try await app.asyncBoot()
        let server: FastCGI.Server
        do {
            server = try options.makeServer(handlers: [.responder: .vapor(app, maxBodySize: "64mb")])
            try await server.runUntilStopped()
        } catch {
            try await app.asyncShutdown()
            throw error
        }
        try await app.asyncShutdown()
        server.logger.notice("vapor-hello: the application is shut down")
    }
}

// Parsed here and served from this top-level async code: Vapor's `Application`
// is made and shut down with `await`.
do {
    try await VaporHelloCommand.parse(ServerOptions.arguments()).serve()
} catch {
    VaporHelloCommand.exit(withError: error)
}
