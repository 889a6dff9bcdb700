package cgroup

import (
	"strings"
	"testing"
)

// FuzzParsePath checks that any path parses without panicking and that a
// reference, when there is one, names an id that occurs in the path.
func FuzzParsePath(f *testing.F) {
	for _, seed := range []string{
		"/docker/" + cid,
		"/system.slice/docker-" + cid + ".scope",
		"/default/t1",
		"/kubepods/besteffort/pod" + podUID + "/" + cid,
		"/kubepods.slice/kubepods-pod" + podSD + ".slice/cri-containerd-" + cid + ".scope",
		"/ecs/" + task + "/" + task + "-1",
		"/ecstasks.slice/ecstasks-" + task + ".slice/docker-" + cid + ".scope",
		"0::/", "", "/", "//", "/a/b/c",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, path string) {
		r, ok := ParsePath(path)
		if !ok {
			return
		}
		if r.ID == "" || !strings.Contains(path, r.ID) {
			t.Fatalf("ParsePath(%q) = %+v: id not in path", path, r)
		}
		_ = PathFromProcCgroup([]byte(path))
	})
}
