import Testing

@testable import FastCGIWire

@Suite("RequestTable: the requests of one connection by id")
struct RequestTableTests {
    @Test("insert, replace, look up and remove, checked against a dictionary")
    func matchesDictionary() {
        var table = RequestTable<Int>()
        var reference: [UInt16: Int] = [:]
        var generator = SystemRandomNumberGenerator()
        for step in 0..<5000 {
            // Few distinct ids, as on a connection: many collisions and removals.
            let id = UInt16.random(in: 0...12, using: &generator)
            switch Int.random(in: 0..<4, using: &generator) {
            case 0, 1:
                table[id] = step
                reference[id] = step
            case 2:
                #expect(table.removeValue(forKey: id) == reference.removeValue(forKey: id))
            default:
                table[id] = nil
                reference[id] = nil
            }
            #expect(table[id] == reference[id])
            #expect(table.count == reference.count)
            #expect(table.isEmpty == reference.isEmpty)
        }
        #expect(table.values.sorted() == reference.values.sorted())
    }

    @Test("ids at the ends of the range and a removal from the middle")
    func edges() {
        var table = RequestTable<String>()
        table[0] = "zero"
        table[UInt16.max] = "max"
        table[7] = "seven"
        #expect(table.removeValue(forKey: 0) == "zero")
        #expect(table[UInt16.max] == "max")
        #expect(table[7] == "seven")
        #expect(table[0] == nil)
        #expect(table.removeValue(forKey: 0) == nil)
        #expect(table.count == 2)
    }
}
