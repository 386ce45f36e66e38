// The names the documentation's samples take as given, so that each sample
// compiles on its own (scripts/docs). Nothing here is part of the library.
import FastCGI

/// "Your app": any handler.
struct App: Handler {
    func process(_ request: Request) throws { try request.write("ok") }
}

/// The greeting handler the in-memory testing samples ask.
struct Greeter: Handler {
    func process(_ request: Request) throws {
        try request.write("Hello, \(try request.params["name"]?.string ?? "world")!\n")
    }
}
