// Package charts holds Vigil's Helm chart (charts/vigil) and the test that
// renders it with the Helm SDK and checks the Kubernetes objects it makes.
// There is no Go code to import here; the package exists for its tests.
package charts
