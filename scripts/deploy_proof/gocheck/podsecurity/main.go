// podsecurity runs Kubernetes' own Pod Security admission evaluator
// (k8s.io/pod-security-admission) at level "restricted" over every pod template in the
// rendered manifests read from stdin: what the API server would refuse in a namespace
// labelled pod-security.kubernetes.io/enforce=restricted.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"
)

type object struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

func podOf(kind string, doc []byte) (*metav1.ObjectMeta, *corev1.PodSpec, error) {
	switch kind {
	case "Deployment":
		var o appsv1.Deployment
		err := yaml.UnmarshalStrict(doc, &o)
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, err
	case "StatefulSet":
		var o appsv1.StatefulSet
		err := yaml.UnmarshalStrict(doc, &o)
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, err
	case "DaemonSet":
		var o appsv1.DaemonSet
		err := yaml.UnmarshalStrict(doc, &o)
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, err
	case "Job":
		var o batchv1.Job
		err := yaml.UnmarshalStrict(doc, &o)
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, err
	case "CronJob":
		var o batchv1.CronJob
		err := yaml.UnmarshalStrict(doc, &o)
		return &o.Spec.JobTemplate.Spec.Template.ObjectMeta, &o.Spec.JobTemplate.Spec.Template.Spec, err
	case "Pod":
		var o corev1.Pod
		err := yaml.UnmarshalStrict(doc, &o)
		return &o.ObjectMeta, &o.Spec, err
	}
	return nil, nil, nil
}

func main() {
	raw, err := io.ReadAll(bufio.NewReader(os.Stdin))
	if err != nil {
		panic(err)
	}
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks())
	if err != nil {
		panic(err)
	}
	level := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	checked, failed := 0, 0
	for _, doc := range bytes.Split(raw, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var o object
		if err := yaml.Unmarshal(doc, &o); err != nil {
			fmt.Println("unreadable document:", err)
			failed++
			continue
		}
		meta, spec, err := podOf(o.Kind, doc)
		if err != nil {
			fmt.Printf("%s/%s: %v\n", o.Kind, o.Metadata.Name, err)
			failed++
			continue
		}
		if spec == nil {
			continue
		}
		checked++
		var problems []string
		for _, r := range evaluator.EvaluatePod(level, meta, spec) {
			if !r.Allowed {
				problems = append(problems, r.ForbiddenReason+" ("+r.ForbiddenDetail+")")
			}
		}
		if len(problems) > 0 {
			failed++
			fmt.Printf("%s/%s violates restricted: %s\n", o.Kind, o.Metadata.Name, strings.Join(problems, "; "))
		}
	}
	fmt.Printf("pod-security restricted: %d pod templates checked, %d failing\n", checked, failed)
	if failed > 0 || checked == 0 {
		os.Exit(1)
	}
}
