package subscriptions

import (
	"fmt"
	"strings"
	"testing"
)

// benchEvent is a ~2 KB event with about 20 top-level fields.
func benchEvent(b *testing.B) *decodedEvent {
	var sb strings.Builder
	sb.WriteString(`{"__typename":"Order","id":123456,"status":"active","total":1499.95,"currency":"EUR",`)
	sb.WriteString(`"customer":{"id":"c-42","name":"Ann O'Neil","email":"ann@example.com","country":"FR"},`)
	sb.WriteString(`"items":[`)
	for i := range 8 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"sku":"SKU-%04d","name":"Item number %d with a longish name","qty":%d,"price":%d.99}`, i, i, i+1, 10*i)
	}
	sb.WriteString(`],`)
	for i := range 14 {
		fmt.Fprintf(&sb, `"extra_%02d":"some filler text for field %d, café ☕",`, i, i)
	}
	sb.WriteString(`"created_at":"2024-05-01T12:00:00Z"}`)
	ev := mustEvent(b, "orderCreated", "orders", sb.String())
	return ev
}

func BenchmarkAppendPayload(b *testing.B) {
	ev := benchEvent(b)
	p := mustCompile(b, `subscription { orders(where: {total: {gte: 100}}) {
		id status total customer { name country } items { sku qty } } }`, nil)
	b.SetBytes(int64(len(ev.Data)))
	b.ReportAllocs()
	buf := p.AppendPayload(nil, ev)
	b.ResetTimer()
	for b.Loop() {
		if !p.Match(ev) {
			b.Fatal("no match")
		}
		buf = p.AppendPayload(buf[:0], ev)
	}
}

func BenchmarkAppendPayloadRaw(b *testing.B) {
	ev := benchEvent(b)
	p := mustCompile(b, `subscription { orders }`, nil)
	b.SetBytes(int64(len(ev.Data)))
	b.ReportAllocs()
	buf := p.AppendPayload(nil, ev)
	for b.Loop() {
		buf = p.AppendPayload(buf[:0], ev)
	}
}

func BenchmarkCompile(b *testing.B) {
	q := `subscription ($s: String) { orders(status: $s, where: {total: {gte: 100}}) {
		id status total customer { name country } items { sku qty ... on Item { price } } } }`
	vars := map[string]any{"s": "active"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(q, "", vars, Limits{}.withDefaults()); err != nil {
			b.Fatal(err)
		}
	}
}
