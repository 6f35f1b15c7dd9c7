package ircreply

import "gopkg.in/irc.v4"

// LabeledResponse is what answers a labeled command (IRCv3
// labeled-response): ACK for no lines, the one line with the label, or the
// lines in a labeled-response batch named ref. Lines of a batch inside the
// response keep their own batch tag; that batch's opening and closing
// lines join the outer one. The lines given are not changed.
func LabeledResponse(label, server, ref string, lines []*irc.Message) []*irc.Message {
	source := &irc.Prefix{Name: server}
	switch len(lines) {
	case 0:
		return []*irc.Message{{Tags: irc.Tags{"label": label}, Prefix: source, Command: "ACK"}}
	case 1:
		return []*irc.Message{withTag(lines[0], "label", label)}
	}
	if isOneBatch(lines) {
		// A response that is one batch (a multiline echo) is labeled on
		// its opening line, as draft/multiline's examples do.
		out := append([]*irc.Message{withTag(lines[0], "label", label)}, lines[1:]...)
		return out
	}
	out := make([]*irc.Message, 0, len(lines)+2)
	out = append(out, &irc.Message{Tags: irc.Tags{"label": label}, Prefix: source, Command: "BATCH", Params: []string{"+" + ref, "labeled-response"}})
	for _, m := range lines {
		if _, inner := m.Tags["batch"]; !inner || m.Command == "BATCH" {
			m = withTag(m, "batch", ref)
		}
		out = append(out, m)
	}
	return append(out, &irc.Message{Prefix: source, Command: "BATCH", Params: []string{"-" + ref}})
}

func withTag(m *irc.Message, key, value string) *irc.Message {
	cp := *m
	cp.Tags = make(irc.Tags, len(m.Tags)+1)
	for k, v := range m.Tags {
		cp.Tags[k] = v
	}
	cp.Tags[key] = value
	return &cp
}

// isOneBatch says lines are one whole batch: its opening, lines of it,
// and its closing.
func isOneBatch(lines []*irc.Message) bool {
	first, last := lines[0], lines[len(lines)-1]
	if first.Command != "BATCH" || len(first.Params) < 1 || len(first.Param(0)) < 2 || first.Param(0)[0] != '+' {
		return false
	}
	ref := first.Param(0)[1:]
	if last.Command != "BATCH" || last.Param(0) != "-"+ref {
		return false
	}
	for _, m := range lines[1 : len(lines)-1] {
		if m.Tags["batch"] != ref {
			return false
		}
	}
	return true
}
