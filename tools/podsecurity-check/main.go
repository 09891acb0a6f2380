// Command podsecurity-check evaluates rendered manifests against a Pod Security Standards
// level with the checks of k8s.io/pod-security-admission, the library the API server's
// admission plugin runs. It exists because no maintained policy CLI can be built from the
// module proxy here, and hand-written checks drift from the real policy.
//
// Usage: podsecurity-check [-level restricted] [-version latest] [-json] [file ...]
// Reads multi-document YAML from the files, or from stdin when none are given, prints one
// line per violation ("Kind/name[/part]: check: detail"), or with -json the pods checked
// and the violations, and exits 1 if there is any violation.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"
)

type object = map[string]any

// pod is one pod an object would create, named for the report.
type pod struct {
	name     string
	template object
}

// kserveFrameworks are the InferenceService component keys that hold the model container.
var kserveFrameworks = []string{
	"model", "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx",
	"huggingface", "pmml", "lightgbm", "paddle",
}

// kserveComponentFields are component settings that are not part of the pod.
var kserveComponentFields = []string{
	"minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType",
	"containerConcurrency", "timeout", "canaryTrafficPercent", "logger", "batcher",
	"labels", "annotations", "deploymentStrategy", "autoScaling", "storageUris",
	"storageContainerName", "workerSpec",
}

// violation is one failed check for one pod.
type violation struct {
	Object string `json:"object"`
	Check  string `json:"check"`
	Detail string `json:"detail"`
}

// report lists the pods evaluated as well as the violations, so a caller can tell an
// empty report from one that looked at nothing.
type report struct {
	Checked    []string    `json:"checked"`
	Violations []violation `json:"violations"`
}

func main() {
	level := flag.String("level", string(api.LevelRestricted), "baseline or restricted")
	version := flag.String("version", api.VersionLatest, `policy version, e.g. "v1.37" or "latest"`)
	asJSON := flag.Bool("json", false, "print the report as JSON")
	flag.Parse()
	result, err := run(*level, *version, flag.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, "podsecurity-check:", err)
		os.Exit(2)
	}
	if *asJSON {
		if err := json.NewEncoder(os.Stdout).Encode(result); err != nil {
			fmt.Fprintln(os.Stderr, "podsecurity-check:", err)
			os.Exit(2)
		}
	} else {
		for _, v := range result.Violations {
			fmt.Printf("%s: %s: %s\n", v.Object, v.Check, v.Detail)
		}
	}
	if len(result.Violations) > 0 {
		os.Exit(1)
	}
}

func run(levelName, versionName string, files []string) (report, error) {
	result := report{Checked: []string{}, Violations: []violation{}}
	level, err := api.ParseLevel(levelName)
	if err != nil {
		return result, err
	}
	version, err := api.ParseVersion(versionName)
	if err != nil {
		return result, err
	}
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		return result, err
	}
	docs, err := readAll(files)
	if err != nil {
		return result, err
	}
	lv := api.LevelVersion{Level: level, Version: version}
	for _, p := range pods(docs) {
		var template corev1.PodTemplateSpec
		if err := convert(p.template, &template); err != nil {
			return result, fmt.Errorf("%s: %w", p.name, err)
		}
		result.Checked = append(result.Checked, p.name)
		for _, check := range evaluator.EvaluatePod(lv, &template.ObjectMeta, &template.Spec) {
			if !check.Allowed {
				result.Violations = append(result.Violations,
					violation{p.name, check.ForbiddenReason, check.ForbiddenDetail})
			}
		}
	}
	return result, nil
}

func readAll(files []string) ([]object, error) {
	if len(files) == 0 {
		return readDocs(os.Stdin)
	}
	var docs []object
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		found, err := readDocs(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		docs = append(docs, found...)
	}
	return docs, nil
}

func readDocs(r io.Reader) ([]object, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs []object
	for {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		var doc object
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			return nil, err
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// pods maps every pod-bearing object to the pod templates it would create.
func pods(docs []object) []pod {
	runtimes := map[string]object{}
	for _, doc := range docs {
		if doc["kind"] == "ServingRuntime" {
			runtimes[str(dig(doc, "metadata", "name"))] = doc
		}
	}
	var out []pod
	for _, doc := range docs {
		kind := str(doc["kind"])
		id := kind + "/" + str(dig(doc, "metadata", "name"))
		switch kind {
		case "Pod":
			out = append(out, pod{id, object{"metadata": doc["metadata"], "spec": doc["spec"]}})
		case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job":
			out = appendTemplate(out, id, dig(doc, "spec", "template"))
		case "PodTemplate":
			out = appendTemplate(out, id, doc["template"])
		case "CronJob":
			out = appendTemplate(out, id, dig(doc, "spec", "jobTemplate", "spec", "template"))
		case "PyTorchJob":
			specs, _ := dig(doc, "spec", "pytorchReplicaSpecs").(object)
			for _, role := range slices.Sorted(maps.Keys(specs)) {
				out = appendTemplate(out, id+"/"+role, dig(specs, role, "template"))
			}
		case "InferenceService":
			for _, component := range []string{"predictor", "transformer", "explainer"} {
				if spec, ok := dig(doc, "spec", component).(object); ok {
					out = append(out, pod{id + "/" + component, kservePod(spec, runtimes)})
				}
			}
		}
	}
	return out
}

func appendTemplate(out []pod, id string, template any) []pod {
	if t, ok := template.(object); ok {
		return append(out, pod{id, t})
	}
	return out
}

// kservePod rebuilds the pod KServe creates for a component: its inline PodSpec, with the
// model container laid over the container of the ServingRuntime it selects, the way the
// controller merges them (the component's fields win).
func kservePod(component object, runtimes map[string]object) object {
	spec := object{}
	var model object
	for key, value := range component {
		if slices.Contains(kserveFrameworks, key) {
			model, _ = value.(object)
		} else if !slices.Contains(kserveComponentFields, key) {
			spec[key] = value
		}
	}
	if model != nil {
		container := object{"name": "kserve-container"}
		if runtime := selectRuntime(model, runtimes); runtime != nil {
			for key, value := range runtimeSpec(runtime) {
				if _, set := spec[key]; !set && key != "containers" {
					spec[key] = value
				}
			}
			container = runtimeContainer(runtime)
		}
		containers, _ := spec["containers"].([]any)
		spec["containers"] = append([]any{merge(container, model)}, containers...)
	}
	meta := object{}
	for _, key := range []string{"labels", "annotations"} {
		if value, ok := component[key]; ok {
			meta[key] = value
		}
	}
	return object{"metadata": meta, "spec": spec}
}

func selectRuntime(model object, runtimes map[string]object) object {
	if name := str(model["runtime"]); name != "" {
		return runtimes[name]
	}
	format := str(dig(model, "modelFormat", "name"))
	for _, name := range slices.Sorted(maps.Keys(runtimes)) {
		formats, _ := dig(runtimes[name], "spec", "supportedModelFormats").([]any)
		for _, f := range formats {
			if entry, ok := f.(object); ok && str(entry["name"]) == format {
				return runtimes[name]
			}
		}
	}
	return nil
}

func runtimeSpec(runtime object) object {
	spec, _ := dig(runtime, "spec").(object)
	return spec
}

func runtimeContainer(runtime object) object {
	containers, _ := runtimeSpec(runtime)["containers"].([]any)
	for _, c := range containers {
		if container, ok := c.(object); ok && str(container["name"]) == "kserve-container" {
			return container
		}
	}
	return object{"name": "kserve-container"}
}

// merge lays over on top of base, recursing into nested objects.
func merge(base, over object) object {
	out := object{}
	for key, value := range base {
		out[key] = value
	}
	for key, value := range over {
		nestedBase, okBase := out[key].(object)
		nestedOver, okOver := value.(object)
		if okBase && okOver {
			out[key] = merge(nestedBase, nestedOver)
		} else {
			out[key] = value
		}
	}
	return out
}

func convert(from object, to any) error {
	raw, err := json.Marshal(from)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, to)
}

func dig(node any, path ...string) any {
	for _, key := range path {
		m, ok := node.(object)
		if !ok {
			return nil
		}
		node = m[key]
	}
	return node
}

func str(value any) string {
	s, _ := value.(string)
	return s
}
