// swift-tools-version: 6.2
import PackageDescription

/// Every target of ours is built in Swift 6 mode with warnings as errors;
/// `treatAllWarnings` applies to this package only, never to dependencies.
let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "swift-fcgi",
    // Linux only: the engine is built on epoll and eventfd, and libfcgi comes
    // from Debian's packages. SwiftPM cannot name Linux here; the macOS line only
    // states the Synchronization module's minimum, not support for macOS.
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "FastCGI", targets: ["FastCGI"]),
        .library(name: "FastCGIWire", targets: ["FastCGIWire"]),
        .library(name: "FastCGIClient", targets: ["FastCGIClient"]),
        .library(name: "FastCGIService", targets: ["FastCGIService"]),
        // The command-line options the examples share, for the examples of the
        // integration packages (Integrations/): not an API with stability promises.
        .library(name: "FastCGIOptions", targets: ["FastCGIOptions"]),
        .executable(name: "hello", targets: ["hello"]),
        .executable(name: "echo", targets: ["echo"]),
        .executable(name: "authorizer", targets: ["authorizer"]),
        .executable(name: "filter", targets: ["filter"]),
        .executable(name: "guestbook", targets: ["guestbook"]),
        .executable(name: "async-hello", targets: ["async-hello"]),
        .executable(name: "reference-echo", targets: ["reference-echo"]),
        .executable(name: "fcgi", targets: ["fcgi"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
    ],
    targets: [
        // libfcgi (Debian libfcgi-dev): the C engine behind threading levels 0 and 1.
        .systemLibrary(
            name: "CFCGI",
            path: "Modulemaps/CFCGI",
            pkgConfig: "fcgi",
            providers: [.apt(["libfcgi-dev"])]
        ),
        // zlib (Debian zlib1g-dev): deflate for GZipRequest.
        .systemLibrary(
            name: "CZlib",
            path: "Modulemaps/CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // Linux epoll from glibc's <sys/epoll.h> (not in Swift's Glibc module).
        .systemLibrary(name: "CEpoll", path: "Modulemaps/CEpoll"),
        // The FastCGI 1.0 protocol in pure Swift: no Foundation, no C, no I/O.
        .target(name: "FastCGIWire", swiftSettings: strict),
        // A blocking FastCGI client for tools, tests and benchmarks.
        .target(name: "FastCGIClient", dependencies: ["FastCGIWire"], swiftSettings: strict),
        // The public API: Server, Request, Handler.
        .target(
            name: "FastCGI",
            dependencies: [
                "CFCGI",
                "CZlib",
                "CEpoll",
                "FastCGIWire",
                .product(name: "Logging", package: "swift-log"),
                // The request metrics (Server.metricsFactory): API only, no backend.
                .product(name: "CoreMetrics", package: "swift-metrics"),
                // A server span per request (Configuration.tracer): API only, no backend.
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strict
        ),
        // Server as a swift-service-lifecycle Service: its own target, so an app
        // that only imports FastCGI never builds ServiceLifecycle.
        .target(
            name: "FastCGIService",
            dependencies: ["FastCGI", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: strict
        ),
        // The command line of a FastCGI app (ServerOptions), as the examples take it.
        .target(
            name: "FastCGIOptions",
            dependencies: [
                "FastCGI",
                "FastCGIWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(name: "hello", dependencies: ["FastCGIOptions"], swiftSettings: strict),
        .executableTarget(
            name: "echo",
            dependencies: [
                "FastCGIOptions",
                // ECHO_TRACE=1: spans kept in memory, for the tracing tests.
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strict),
        .executableTarget(name: "authorizer", dependencies: ["FastCGIOptions"], swiftSettings: strict),
        .executableTarget(name: "filter", dependencies: ["FastCGIOptions"], swiftSettings: strict),
        .executableTarget(name: "guestbook", dependencies: ["FastCGIOptions"], swiftSettings: strict),
        .executableTarget(name: "async-hello", dependencies: ["FastCGIOptions", "FastCGIService"], swiftSettings: strict),
        // The echo contract in C on libfcgi alone: the reference for differential
        // tests and benchmarks.
        .executableTarget(name: "reference-echo", dependencies: ["CFCGI"], linkerSettings: [.linkedLibrary("pthread")]),
        // `fcgi`: talk to any FastCGI app (request, get-values, bench).
        .executableTarget(
            name: "fcgi",
            dependencies: ["FastCGIClient", "FastCGIWire", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict
        ),
        .testTarget(name: "FastCGIWireTests", dependencies: ["FastCGIWire"], swiftSettings: strict),
        .testTarget(name: "FastCGIClientTests", dependencies: ["FastCGIClient", "FastCGIWire"], swiftSettings: strict),
        .testTarget(
            name: "FastCGITests",
            dependencies: [
                "FastCGI", "FastCGIWire", "FastCGIClient", "FastCGIService", "hello", "echo", "authorizer", "filter", "guestbook",
                "async-hello",
                "reference-echo",
                "fcgi", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strict
        ),
    ]
)
