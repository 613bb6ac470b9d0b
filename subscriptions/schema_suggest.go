package subscriptions

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
)

// Suggestions in variable errors, as graphql-core writes them ("Did you
// mean the enum value 'RED'?"): its suggestion_list and did_you_mean.
// gqlparser has its own list for validation messages, with another
// distance (no transpositions) and order.

// didYouMean is graphql-core's did_you_mean: "" without suggestions.
func didYouMean(suggestions []string, what string) string {
	if len(suggestions) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(" Did you mean ")
	if what != "" {
		b.WriteString(what + " ")
	}
	s := suggestions[:min(len(suggestions), 5)]
	quoted := func(x string) string { return "'" + x + "'" }
	switch len(s) {
	case 1:
		b.WriteString(quoted(s[0]) + "?")
	case 2:
		b.WriteString(quoted(s[0]) + " or " + quoted(s[1]) + "?")
	default:
		for _, x := range s[:len(s)-1] {
			b.WriteString(quoted(x) + ", ")
		}
		b.WriteString("or " + quoted(s[len(s)-1]) + "?")
	}
	return b.String()
}

// enumSuggestions is graphql-core's did_you_mean_enum_value.
func enumSuggestions(def *ast.Definition, typed string) string {
	names := make([]string, len(def.EnumValues))
	for i, v := range def.EnumValues {
		names[i] = v.Name
	}
	return didYouMean(suggestionList(typed, names), "the enum value")
}

// suggestionList is graphql-core's suggestion_list: the options within a
// lexical distance of input that grows with its length, closest first,
// then in natural order.
func suggestionList(input string, options []string) []string {
	threshold := len([]rune(input))*2/5 + 1
	type scored struct {
		option   string
		distance int
	}
	var found []scored
	for _, o := range options {
		if d, ok := lexicalDistance(input, o, threshold); ok {
			found = append(found, scored{o, d})
		}
	}
	slices.SortStableFunc(found, func(a, b scored) int {
		return cmp.Or(cmp.Compare(a.distance, b.distance), naturalCompare(a.option, b.option))
	})
	out := make([]string, len(found))
	for i, f := range found {
		out[i] = f.option
	}
	return out
}

// lexicalDistance is graphql-core's LexicalDistance.measure: edits
// (insertions, deletions, substitutions, swaps of neighbours) between a
// and b ignoring case, a case change alone counting one; ok is false
// beyond threshold.
func lexicalDistance(a, b string, threshold int) (int, bool) {
	if a == b {
		return 0, true
	}
	x, y := []rune(strings.ToLower(b)), []rune(strings.ToLower(a))
	if string(x) == string(y) {
		return 1, true
	}
	if len(x) < len(y) {
		x, y = y, x
	}
	if len(x)-len(y) > threshold {
		return 0, false
	}
	var rows [3][]int
	for i := range rows {
		rows[i] = make([]int, len(y)+1)
	}
	for j := range rows[0] {
		rows[0][j] = j
	}
	for i := 1; i <= len(x); i++ {
		up, cur := rows[(i-1)%3], rows[i%3]
		cur[0] = i
		smallest := i
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			cell := min(up[j]+1, cur[j-1]+1, up[j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				cell = min(cell, rows[(i-2)%3][j-2]+1)
			}
			smallest = min(smallest, cell)
			cur[j] = cell
		}
		if smallest > threshold {
			return 0, false
		}
	}
	d := rows[len(x)%3][len(y)]
	return d, d <= threshold
}

// naturalCompare orders as graphql-core's natural_comparison_key: runs of
// digits compare as numbers.
func naturalCompare(a, b string) int {
	pa, pb := naturalParts(a), naturalParts(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if i%2 == 1 { // digits
			na, _ := strconv.ParseInt(pa[i], 10, 64)
			nb, _ := strconv.ParseInt(pb[i], 10, 64)
			if c := cmp.Or(cmp.Compare(na, nb), strings.Compare(pa[i], pb[i])); c != 0 {
				return c
			}
		} else if c := strings.Compare(pa[i], pb[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(pa), len(pb))
}

// naturalParts is re.split(r"(\d+)", s): text, digits, text...
func naturalParts(s string) []string {
	parts := []string{}
	start, digits := 0, false
	for i := 0; i <= len(s); i++ {
		isDigit := i < len(s) && s[i] >= '0' && s[i] <= '9'
		if i == len(s) || isDigit != digits {
			parts = append(parts, s[start:i])
			start, digits = i, isDigit
		}
	}
	if digits {
		parts = append(parts, "") // what follows the last digits
	}
	return parts
}
