// Package version holds the build's version string, set at link time.
package version

// Version is the Vigil release; `make build` sets it from git.
var Version = "dev"
