// An authorizer: allows requests with the right bearer token, refuses the others.
// The token comes from the AUTH_TOKEN environment variable of the app (default
// "secret"); an allowed request passes `Variable-AUTH_USER` on to the web server.
import ArgumentParser
import FastCGI
import FastCGIOptions

#if canImport(Glibc)
    import Glibc
#endif

let expectedToken: String = getenv("AUTH_TOKEN").map { String(cString: $0) } ?? "secret"

struct TokenAuthorizer: Handler {
    func process(_ request: Request) throws {
        try request.clearHeaders()
        if request.environ["HTTP_AUTHORIZATION"] == "Bearer \(expectedToken)" {
            try request.setHeader("Status", "200")
            try request.setHeader("Variable-AUTH_USER", "token-user")
        } else {
            try request.setHeader("Status", "401")
            try request.setHeader("WWW-Authenticate", "Bearer")
            try request.setHeader("Content-Type", "text/plain")
            try request.write("authorization required\n")
        }
    }
}

struct AuthorizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "authorizer", abstract: "A FastCGI authorizer checking a bearer token.")

    @OptionGroup var options: ServerOptions

    func run() throws {
        try options.makeServer(handlers: [.authorizer: .type(TokenAuthorizer.self)]).run()
    }
}

AuthorizerCommand.main(ServerOptions.arguments())
