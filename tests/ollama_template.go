// Parses and runs an Ollama TEMPLATE with Go's own text/template, the engine Ollama uses, with
// the values Ollama passes a chat template (System, Messages with Role/Content/Thinking, Think,
// IsThinkSet). Also reports the text around the `{{ .Thinking }}` action: Ollama takes the first
// and last text of the list holding it, inside a range over .Messages, as the thinking tags.
//
//	go run ollama_template.go cases.json   (cases.json: {"template": "...", "cases": [...]})
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
	"text/template/parse"
)

type Message struct {
	Role     string
	Content  string
	Thinking string
}

type Case struct {
	System     string
	Messages   []*Message
	Think      bool
	IsThinkSet bool
}

type Input struct {
	Template string
	Cases    []Case
}

type Output struct {
	Renders       []string `json:"renders"`
	OpeningTag    string   `json:"opening_tag"`
	ClosingTag    string   `json:"closing_tag"`
	InMessageLoop bool     `json:"in_message_loop"`
}

func usesMessages(pipe *parse.PipeNode) bool {
	return pipe != nil && strings.Contains(pipe.String(), ".Messages")
}

// thinkingTags walks the tree keeping the lists and ranges above each node.
func thinkingTags(node parse.Node, lists []*parse.ListNode, inLoop bool, out *Output) {
	switch n := node.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			thinkingTags(c, append(lists, n), inLoop, out)
		}
	case *parse.ActionNode:
		if strings.TrimSpace(n.Pipe.String()) == ".Thinking" && len(lists) > 0 {
			list := lists[len(lists)-1]
			if first, ok := list.Nodes[0].(*parse.TextNode); ok {
				out.OpeningTag = strings.TrimSpace(string(first.Text))
			}
			if last, ok := list.Nodes[len(list.Nodes)-1].(*parse.TextNode); ok {
				out.ClosingTag = strings.TrimSpace(string(last.Text))
			}
			out.InMessageLoop = inLoop
		}
	case *parse.IfNode:
		thinkingTags(n.List, lists, inLoop, out)
		thinkingTags(n.ElseList, lists, inLoop, out)
	case *parse.RangeNode:
		loop := inLoop || usesMessages(n.Pipe)
		thinkingTags(n.List, lists, loop, out)
		thinkingTags(n.ElseList, lists, loop, out)
	case *parse.WithNode:
		thinkingTags(n.List, lists, inLoop, out)
		thinkingTags(n.ElseList, lists, inLoop, out)
	}
}

func main() {
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	var in Input
	if err := json.Unmarshal(raw, &in); err != nil {
		panic(err)
	}
	tmpl, err := template.New("").Parse(in.Template)
	if err != nil {
		fmt.Fprintln(os.Stderr, "template parse error:", err)
		os.Exit(2)
	}
	out := Output{Renders: []string{}}
	thinkingTags(tmpl.Tree.Root, nil, false, &out)
	for _, c := range in.Cases {
		var b strings.Builder
		values := map[string]any{"System": c.System, "Messages": c.Messages, "Think": c.Think,
			"IsThinkSet": c.IsThinkSet, "Response": ""}
		if err := tmpl.Execute(&b, values); err != nil {
			fmt.Fprintln(os.Stderr, "template execute error:", err)
			os.Exit(3)
		}
		out.Renders = append(out.Renders, b.String())
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		panic(err)
	}
}
