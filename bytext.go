package main

// The text of who made a change: the By: line of a report (CONTRACT "Who
// made the change"), the end of its syslog line, and the action's
// environment. Every text a process chose is quoted.

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// appendBy appends the By: line's value for p (CONTRACT "Who made the
// change"): every text the process chose (its name, its executable's
// path, its arguments) is quoted, so that none can forge a field or a
// line.
func appendBy(b []byte, p process) []byte {
	b = append(b, "pid="...)
	b = strconv.AppendInt(b, int64(p.pid), 10)
	if p.pid == 0 {
		return append(b, " (outside famids's pid namespace)"...)
	}
	if p.covered {
		return append(b, " (its /proc entry is covered by a mount: not read)"...)
	}
	if p.exited {
		b = append(b, " (exited)"...)
	}
	if !p.known {
		return b
	}
	b = appendText(b, " comm=", p.comm)
	b = appendText(b, " exe=", orDash(p.exe))
	if p.exeOther {
		b = append(b, " exe_replaced"...)
	}
	if p.mntns != "" {
		b = append(append(b, " mntns="...), p.mntns...)
	}
	b = appendID(b, " uid=", p.uid, p.user)
	if p.ruid != p.uid {
		b = appendID(b, " ruid=", p.ruid, p.ruser)
	}
	for i, u := range p.threadUIDs {
		key := ","
		if i == 0 {
			key = " thread_uids="
		}
		b = appendID(b, key, u.id, u.name)
	}
	b = appendID(b, " auid=", p.auid, p.auser)
	b = append(b, " ses="...)
	if p.ses == unsetID {
		b = append(b, '-')
	} else {
		b = strconv.AppendUint(b, uint64(p.ses), 10)
	}
	b = appendText(b, " tty=", orDash(p.tty))
	if len(p.parents) > 0 {
		var chain []byte
		for i, a := range p.parents {
			if i > 0 {
				chain = append(chain, '<')
			}
			chain = append(chain, quoteComm(a.comm)...)
			chain = append(strconv.AppendInt(append(chain, '('), int64(a.pid), 10), ')')
		}
		b = appendText(b, " parents=", string(chain))
	}
	if p.cmdline != nil {
		b = append(b, " cmdline="...)
		b = appendQuotedCut(b, shellJoin(p.cmdline), p.cut, maxQuotedCmdline)
	}
	return b
}

// maxQuotedCmdline is how long a command line may be once quoted: an
// argument of 4 KiB of control characters is 16 KiB quoted, and a By:
// line must stay readable.
const maxQuotedCmdline = 600

// appendQuotedCut appends s Go-quoted, cut so that the quoted text is at
// most limit bytes, with " ..." before the closing quote when it was cut
// there, or when cut says s itself was.
func appendQuotedCut(b []byte, s string, cut bool, limit int) []byte {
	const more = " ..."
	if !cut && len(strconv.Quote(s)) <= limit {
		return strconv.AppendQuote(b, s)
	}
	n := len(s)
	for n > 0 && len(strconv.Quote(s[:n]+more)) > limit {
		n -= max(1, (len(strconv.Quote(s[:n]+more))-limit)/4) // a byte quotes to at most 4
		for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
			n-- // not in the middle of a character
		}
	}
	return strconv.AppendQuote(b, s[:max(n, 0)]+more)
}

// appendID appends key and a user id with its name, or "-" when unset.
func appendID(b []byte, key string, id uint32, name string) []byte {
	b = append(b, key...)
	if id == unsetID {
		return append(b, '-')
	}
	b = strconv.AppendUint(b, uint64(id), 10)
	if name != "" && name != strconv.FormatUint(uint64(id), 10) {
		b = append(append(append(b, '('), name...), ')')
	}
	return b
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// quoteComm quotes a process name in a chain of parents, or in a syslog
// line's "COMM[PID]", when it holds anything that could be read as part
// of either.
func quoteComm(comm string) string {
	if strings.ContainsAny(comm, "()<[] ") {
		return strconv.Quote(comm)
	}
	return quoteIfNeeded(comm)
}

// shellJoin joins arguments as a shell would read them back: an argument
// that holds anything but plain characters is single-quoted.
func shellJoin(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
			b.WriteString(a)
			continue
		}
		b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
	}
	return b.String()
}

// byline returns the end of a syslog line for the first process of ps:
// "by COMM[PID] auid=N", or "" without one.
func byline(ps []process) string {
	if len(ps) == 0 {
		return ""
	}
	p := ps[0]
	comm := "?"
	if p.known {
		comm = quoteComm(p.comm)
	}
	auid := "-"
	if p.known && p.auid != unsetID {
		auid = strconv.FormatUint(uint64(p.auid), 10)
	}
	return "by " + comm + "[" + strconv.Itoa(int(p.pid)) + "] auid=" + auid
}

// byEnv returns the action's environment of who made the change: the
// first process's pid, uid and login uid, each left out when unknown.
func byEnv(ps []process) []string {
	if len(ps) == 0 {
		return nil
	}
	p := ps[0]
	env := []string{"FAMIDS_BY_PID=" + strconv.Itoa(int(p.pid))}
	if p.known {
		env = append(env, "FAMIDS_BY_UID="+strconv.FormatUint(uint64(p.uid), 10))
		if p.auid != unsetID {
			env = append(env, "FAMIDS_BY_AUID="+strconv.FormatUint(uint64(p.auid), 10))
		}
	}
	return env
}
