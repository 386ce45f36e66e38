// swift-tools-version: 6.2
import PackageDescription

/// Hummingbird 2 over swift-fcgi: its own package, so that a user of the core
/// library never builds SwiftNIO (which Hummingbird is built on).
let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "HummingbirdFastCGI",
    // Linux only, as swift-fcgi (see its Package.swift).
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "HummingbirdFastCGI", targets: ["HummingbirdFastCGI"]),
        .executable(name: "hb-hello", targets: ["hb-hello"]),
    ],
    dependencies: [
        .package(name: "swift-fcgi", path: "../.."),
        // The router, middleware, Request/Response and swift-http-types we adapt.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        // SocketAddress, for RemoteAddressRequestContext (Hummingbird depends on it already).
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        // hb-hello's command line, as the other examples'.
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        // The request's span, named for the route (Hummingbird depends on it already).
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
    ],
    targets: [
        .target(
            name: "HummingbirdFastCGI",
            dependencies: [
                .product(name: "FastCGI", package: "swift-fcgi"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "hb-hello",
            dependencies: [
                "HummingbirdFastCGI",
                .product(name: "FastCGIOptions", package: "swift-fcgi"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "HummingbirdFastCGITests",
            dependencies: [
                "HummingbirdFastCGI",
                .product(name: "FastCGI", package: "swift-fcgi"),
                .product(name: "FastCGIClient", package: "swift-fcgi"),
                // Built for the catalog's ServiceGroup sample (scripts/docs).
                .product(name: "FastCGIService", package: "swift-fcgi"),
                .product(name: "FastCGIWire", package: "swift-fcgi"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strict
        ),
    ]
)
