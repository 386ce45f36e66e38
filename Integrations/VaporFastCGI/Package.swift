// swift-tools-version: 6.2
import PackageDescription

/// Vapor 4 over swift-fcgi: its own package, so that a user of the core
/// library never builds Vapor and what it brings (SwiftNIO, AsyncHTTPClient,
/// swift-crypto, …).
let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "VaporFastCGI",
    // Linux only, as swift-fcgi (see its Package.swift).
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "VaporFastCGI", targets: ["VaporFastCGI"]),
        .executable(name: "vapor-hello", targets: ["vapor-hello"]),
    ],
    dependencies: [
        .package(name: "swift-fcgi", path: "../.."),
        // The Application, its routes, middleware, Request/Response and errors we adapt.
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
        // ByteBuffer and the event loops Vapor's Request and Response are made of
        // (Vapor depends on it already).
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        // vapor-hello's command line, as the other examples'.
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        // The request's span, named for the route (Vapor depends on it already).
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
    ],
    targets: [
        .target(
            name: "VaporFastCGI",
            dependencies: [
                .product(name: "FastCGI", package: "swift-fcgi"),
                .product(name: "Vapor", package: "vapor"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "vapor-hello",
            dependencies: [
                "VaporFastCGI",
                .product(name: "FastCGIOptions", package: "swift-fcgi"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VaporFastCGITests",
            dependencies: [
                "VaporFastCGI",
                .product(name: "FastCGI", package: "swift-fcgi"),
                .product(name: "Vapor", package: "vapor"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strict
        ),
    ]
)
