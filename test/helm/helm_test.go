// SPDX-License-Identifier: Apache-2.0

// Package helm renders the Helm chart in deploy/helm/emaillistener with Helm's
// own Go library (the same loader, schema validation and template engine as
// `helm template`), for the value combinations operators use, and decodes
// every manifest strictly into the Kubernetes API types. A template that emits
// a misspelt or misplaced field, a wrong type or a value combination that
// renders nonsense fails here instead of at `kubectl apply` time. Nothing
// contacts a cluster.
package helm

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"helm.sh/helm/v4/pkg/strvals"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir  = "../../deploy/helm/emaillistener"
	release   = "el"
	namespace = "creatio"
	// fullname is the chart's name for a release whose name does not contain
	// the chart's: <release>-<chart>.
	fullname  = release + "-emaillistener"
	container = "emaillistener"
)

// loadChart loads the chart from disk for each case: rendering mutates
// nothing we know of, but a fresh copy keeps the cases independent.
func loadChart(t *testing.T) *chartv2.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return ch
}

// values builds user values from `--set` expressions, parsed by Helm's own
// strvals parser, so the cases read like the helm command lines operators
// type (and get the same types: numbers as int64, true/false as bool).
func values(t *testing.T, sets ...string) map[string]any {
	t.Helper()
	v := map[string]any{}
	for _, s := range sets {
		if err := strvals.ParseInto(s, v); err != nil {
			t.Fatalf("--set %s: %v", s, err)
		}
	}
	return v
}

// render renders the chart as `helm template` does (schema validation
// included) and returns the manifests by template name.
func render(t *testing.T, vals map[string]any) (map[string]string, error) {
	t.Helper()
	ch := loadChart(t)
	opts := common.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true}
	rv, err := util.ToRenderValues(ch, vals, opts, nil)
	if err != nil {
		return nil, err
	}
	return engine.Render(ch, rv)
}

// objects are the decoded manifests of one rendering, by "Kind/name".
type objects struct {
	byKey map[string]any
	notes string
}

func (o objects) kinds() []string {
	return slices.Sorted(maps.Keys(o.byKey))
}

func get[T any](t *testing.T, o objects, kind, name string) T {
	t.Helper()
	v, ok := o.byKey[kind+"/"+name]
	if !ok {
		t.Fatalf("no %s %q rendered; have %v", kind, name, o.kinds())
	}
	typed, ok := v.(T)
	if !ok {
		t.Fatalf("%s/%s decoded as %T", kind, name, v)
	}
	return typed
}

func has(o objects, kind, name string) bool {
	_, ok := o.byKey[kind+"/"+name]
	return ok
}

// docSep splits a multi-document YAML stream.
var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeAll splits every rendered template into documents and decodes each
// into its Kubernetes type, rejecting unknown fields and duplicate keys.
func decodeAll(t *testing.T, rendered map[string]string) objects {
	t.Helper()
	o := objects{byKey: map[string]any{}}
	for _, file := range slices.Sorted(maps.Keys(rendered)) {
		if strings.HasSuffix(file, "NOTES.txt") {
			o.notes = rendered[file]
			continue
		}
		for _, doc := range docSep.Split(rendered[file], -1) {
			if isEmptyYAML(doc) {
				continue
			}
			js, err := yaml.YAMLToJSONStrict([]byte(doc))
			if err != nil {
				t.Fatalf("%s: invalid YAML: %v\n%s", file, err, doc)
			}
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Name      string `json:"name"`
					Namespace string `json:"namespace"`
				} `json:"metadata"`
			}
			if err := json.Unmarshal(js, &meta); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if meta.Metadata.Name == "" || meta.Metadata.Namespace == "" {
				t.Errorf("%s: %s without name or namespace", file, meta.Kind)
			}
			obj := decodeKind(t, file, meta.APIVersion, meta.Kind, js)
			key := meta.Kind + "/" + meta.Metadata.Name
			if _, dup := o.byKey[key]; dup {
				t.Errorf("%s rendered twice", key)
			}
			o.byKey[key] = obj
		}
	}
	return o
}

func isEmptyYAML(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// decodeKind maps apiVersion/kind to its Go type; a kind the test does not
// know fails, so a new template cannot slip past unchecked.
func decodeKind(t *testing.T, file, apiVersion, kind string, js []byte) any {
	t.Helper()
	switch apiVersion + " " + kind {
	case "apps/v1 StatefulSet":
		return strict[appsv1.StatefulSet](t, file, js)
	case "v1 Service":
		return strict[corev1.Service](t, file, js)
	case "v1 Secret":
		return strict[corev1.Secret](t, file, js)
	case "v1 ServiceAccount":
		return strict[corev1.ServiceAccount](t, file, js)
	case "v1 ConfigMap":
		return strict[corev1.ConfigMap](t, file, js)
	case "v1 Pod":
		return strict[corev1.Pod](t, file, js)
	case "networking.k8s.io/v1 Ingress":
		return strict[networkingv1.Ingress](t, file, js)
	case "networking.k8s.io/v1 NetworkPolicy":
		return strict[networkingv1.NetworkPolicy](t, file, js)
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return strict[autoscalingv2.HorizontalPodAutoscaler](t, file, js)
	case "policy/v1 PodDisruptionBudget":
		return strict[policyv1.PodDisruptionBudget](t, file, js)
	case "monitoring.coreos.com/v1 ServiceMonitor", "keda.sh/v1alpha1 ScaledObject":
		// CRDs: no Go types in k8s.io/api; checked as maps.
		var m map[string]any
		if err := json.Unmarshal(js, &m); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return m
	}
	t.Fatalf("%s: unexpected %s %s", file, apiVersion, kind)
	return nil
}

func strict[T any](t *testing.T, file string, js []byte) *T {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	v := new(T)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: strict decode into %T: %v\n%s", file, v, err, js)
	}
	return v
}

// mustRender renders and decodes, failing the test on a render error, and
// runs the checks every rendering must pass.
func mustRender(t *testing.T, vals map[string]any) objects {
	t.Helper()
	rendered, err := render(t, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	o := decodeAll(t, rendered)
	checkInvariants(t, o)
	return o
}

// checkInvariants are what Kubernetes would reject or what silently breaks
// the deployment, independent of the values: selectors that miss the pods,
// ports that resolve to nothing, duplicate variables, a grace period the
// shutdown does not fit in.
func checkInvariants(t *testing.T, o objects) {
	t.Helper()
	sts := get[*appsv1.StatefulSet](t, o, "StatefulSet", fullname)
	podLabels := sts.Spec.Template.Labels
	if !subset(sts.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("StatefulSet selector %v does not match its pod labels %v", sts.Spec.Selector.MatchLabels, podLabels)
	}
	if sts.Spec.ServiceName != fullname+"-headless" || !has(o, "Service", sts.Spec.ServiceName) {
		t.Errorf("StatefulSet serviceName %q is not a rendered Service", sts.Spec.ServiceName)
	}
	c := mainContainer(t, sts)
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	names := map[string]bool{}
	for _, e := range c.Env {
		if names[e.Name] {
			t.Errorf("env %s appears twice", e.Name)
		}
		names[e.Name] = true
	}
	vols := map[string]bool{}
	for _, v := range sts.Spec.Template.Spec.Volumes {
		vols[v.Name] = true
	}
	for _, m := range c.VolumeMounts {
		if !vols[m.Name] {
			t.Errorf("volumeMount %s has no volume", m.Name)
		}
	}
	for key, v := range o.byKey {
		switch obj := v.(type) {
		case *corev1.Service:
			if !subset(obj.Spec.Selector, podLabels) || len(obj.Spec.Selector) == 0 {
				t.Errorf("%s selector %v misses the pods", key, obj.Spec.Selector)
			}
			for _, p := range obj.Spec.Ports {
				if p.TargetPort.StrVal != "" {
					if _, ok := ports[p.TargetPort.StrVal]; !ok {
						t.Errorf("%s targetPort %q is no container port", key, p.TargetPort.StrVal)
					}
				}
			}
		case *policyv1.PodDisruptionBudget:
			if !subset(obj.Spec.Selector.MatchLabels, podLabels) {
				t.Errorf("%s selector misses the pods", key)
			}
		case *networkingv1.NetworkPolicy:
			if !subset(obj.Spec.PodSelector.MatchLabels, podLabels) {
				t.Errorf("%s podSelector misses the pods", key)
			}
		case *autoscalingv2.HorizontalPodAutoscaler:
			if ref := obj.Spec.ScaleTargetRef; ref.Kind != "StatefulSet" || ref.Name != sts.Name || ref.APIVersion != "apps/v1" {
				t.Errorf("%s targets %+v", key, ref)
			}
		}
	}
	// Probes must hit the service's health paths on a declared port.
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe missing", name)
			continue
		}
		if _, ok := ports[p.HTTPGet.Port.StrVal]; !ok {
			t.Errorf("%s probe port %v is no container port", name, p.HTTPGet.Port)
		}
	}
	// The grace period must cover EL_SHUTDOWN_TIMEOUT (parsed by Go, not by
	// the template under test) plus a preStop sleep, with room for the hand-off.
	timeout := 20 * time.Second // the service's default
	if v, ok := envValue(c, "EL_SHUTDOWN_TIMEOUT"); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("EL_SHUTDOWN_TIMEOUT %q: %v", v, err)
		}
		timeout = d
	}
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		timeout += time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	grace := sts.Spec.Template.Spec.TerminationGracePeriodSeconds
	if grace == nil || time.Duration(*grace)*time.Second <= timeout {
		t.Errorf("terminationGracePeriodSeconds %v is not longer than shutdown timeout + preStop %v", grace, timeout)
	}
	// The helm test pod must call the Service on its port.
	if has(o, "Pod", fullname+"-test") {
		pod := get[*corev1.Pod](t, o, "Pod", fullname+"-test")
		svc := get[*corev1.Service](t, o, "Service", fullname)
		want := fmt.Sprintf("http://%s:%d/api/listeners/status", fullname, svc.Spec.Ports[0].Port)
		if !slices.Contains(pod.Spec.Containers[0].Command, want) {
			t.Errorf("test pod command %v does not fetch %s", pod.Spec.Containers[0].Command, want)
		}
	}
}

func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func mainContainer(t *testing.T, sts *appsv1.StatefulSet) *corev1.Container {
	t.Helper()
	for i := range sts.Spec.Template.Spec.Containers {
		if c := &sts.Spec.Template.Spec.Containers[i]; c.Name == container {
			return c
		}
	}
	t.Fatalf("no container %q", container)
	return nil
}

func envVar(c *corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

func envValue(c *corev1.Container, name string) (string, bool) {
	e, ok := envVar(c, name)
	return e.Value, ok && e.ValueFrom == nil
}

func wantEnv(t *testing.T, c *corev1.Container, name, want string) {
	t.Helper()
	got, ok := envValue(c, name)
	if !ok || got != want {
		t.Errorf("env %s = %q (set %v), want %q", name, got, ok, want)
	}
}

func wantNoEnv(t *testing.T, c *corev1.Container, names ...string) {
	t.Helper()
	for _, n := range names {
		if e, ok := envVar(c, n); ok {
			t.Errorf("env %s unexpectedly set: %+v", n, e)
		}
	}
}

func wantSecretEnv(t *testing.T, c *corev1.Container, name, secret, key string) {
	t.Helper()
	e, ok := envVar(c, name)
	if !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		t.Errorf("env %s is not from a Secret: %+v", name, e)
		return
	}
	if r := e.ValueFrom.SecretKeyRef; r.Name != secret || r.Key != key {
		t.Errorf("env %s from secret %s/%s, want %s/%s", name, r.Name, r.Key, secret, key)
	}
}

func absent(t *testing.T, o objects, kinds ...string) {
	t.Helper()
	for _, k := range kinds {
		for key := range o.byKey {
			if strings.HasPrefix(key, k+"/") {
				t.Errorf("%s rendered but not enabled", key)
			}
		}
	}
}

// field walks a decoded CRD map along a path of keys and list indexes.
func field(t *testing.T, m any, path ...any) any {
	t.Helper()
	cur := m
	for _, p := range path {
		switch k := p.(type) {
		case string:
			mm, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a map at %q", path, k)
			}
			if cur, ok = mm[k]; !ok {
				t.Fatalf("%v: missing %q", path, k)
			}
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%v: no element %d", path, k)
			}
			cur = l[k]
		}
	}
	return cur
}

// newKey is a fresh AES-256 key as the chart wants it, so no fixed key is
// committed and the Secret check compares with what this run generated.
func newKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// cluster are the values every multi-replica case needs.
var cluster = []string{"redis.url=redis://redis-master.redis:6379/0", "secretKey.existingSecret=el-key"}

func TestSingleNodeMemoryStore(t *testing.T) {
	o := mustRender(t, values(t))
	sts := get[*appsv1.StatefulSet](t, o, "StatefulSet", fullname)
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 1 {
		t.Errorf("replicas = %v, want 1", sts.Spec.Replicas)
	}
	c := mainContainer(t, sts)
	wantNoEnv(t, c, "EL_REDIS_URL", "ExchangeListenerRedisHost", "ExchangeListenerRedisPassword", "EL_SECRET_KEY_FILE", "EL_PATH_PREFIX")
	wantEnv(t, c, "EL_LISTEN_ADDR", ":10000")
	wantEnv(t, c, "EL_SHUTDOWN_TIMEOUT", "20s")
	if e, _ := envVar(c, "PodName"); e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("PodName (the cluster node id) is not the pod name: %+v", e)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 10000 {
		t.Errorf("container ports %+v, want http 10000", c.Ports)
	}
	// The original service's port 80 on the Service, mapped to 10000.
	svc := get[*corev1.Service](t, o, "Service", fullname)
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || len(svc.Spec.Ports) != 1 {
		t.Fatalf("service %+v", svc.Spec)
	}
	if p := svc.Spec.Ports[0]; p.Port != 80 || p.TargetPort.StrVal != "http" || p.NodePort != 0 {
		t.Errorf("service port %+v, want 80 -> http", p)
	}
	if p := get[*corev1.Service](t, o, "Service", fullname+"-headless").Spec.Ports[0]; p.Port != 10000 {
		t.Errorf("headless service port %d, want the container's 10000", p.Port)
	}
	if c.LivenessProbe.HTTPGet.Path != "/api/listeners/status" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes %s / %s", c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path)
	}
	if g := *sts.Spec.Template.Spec.TerminationGracePeriodSeconds; g != 45 {
		t.Errorf("grace period %d, want the default 45", g)
	}
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			t.Errorf("secret volume %s without Redis", v.Name)
		}
	}
	get[*policyv1.PodDisruptionBudget](t, o, "PodDisruptionBudget", fullname)
	get[*corev1.ServiceAccount](t, o, "ServiceAccount", fullname)
	absent(t, o, "HorizontalPodAutoscaler", "ScaledObject", "Ingress", "NetworkPolicy", "ServiceMonitor", "Secret")
	if !strings.Contains(o.notes, fmt.Sprintf("http://%s.%s.svc.cluster.local:80/api/listeners", fullname, namespace)) {
		t.Errorf("NOTES do not give the in-cluster URL:\n%s", o.notes)
	}
}

func TestThreeReplicasRedisURLSecretKey(t *testing.T) {
	key := newKey(t)
	url := "redis://redis-master.redis:6379/2"
	o := mustRender(t, values(t, "replicaCount=3", "redis.url="+url, "redis.password=s3cret", "secretKey.value="+key))
	sts := get[*appsv1.StatefulSet](t, o, "StatefulSet", fullname)
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 3 {
		t.Errorf("replicas = %v, want 3", sts.Spec.Replicas)
	}
	c := mainContainer(t, sts)
	wantEnv(t, c, "EL_REDIS_URL", url)
	wantEnv(t, c, "EL_SECRET_KEY_FILE", "/etc/emaillistener/secret-key/secret-key")
	wantSecretEnv(t, c, "ExchangeListenerRedisPassword", fullname, "redis-password")
	wantNoEnv(t, c, "EL_SECRET_KEY", "EL_ALLOW_PLAINTEXT_SECRETS")
	sec := get[*corev1.Secret](t, o, "Secret", fullname)
	if string(sec.Data["secret-key"]) != key || string(sec.Data["redis-password"]) != "s3cret" {
		t.Errorf("chart Secret holds %q / %q", sec.Data["secret-key"], sec.Data["redis-password"])
	}
	checkKeyVolume(t, sts, c, fullname, "secret-key")
	// A changed secret must restart the pods.
	if sts.Spec.Template.Annotations["checksum/secret"] == "" {
		t.Error("no checksum/secret annotation")
	}
}

func TestExistingSecrets(t *testing.T) {
	o := mustRender(t, values(t, "replicaCount=2", "redis.urlSecret.name=redis-conn", "redis.urlSecret.key=url",
		"secretKey.existingSecret=el-key", "secretKey.existingSecretKey=aes"))
	sts := get[*appsv1.StatefulSet](t, o, "StatefulSet", fullname)
	c := mainContainer(t, sts)
	wantSecretEnv(t, c, "EL_REDIS_URL", "redis-conn", "url")
	checkKeyVolume(t, sts, c, "el-key", "aes")
	absent(t, o, "Secret")
}

// checkKeyVolume: the key file EL_SECRET_KEY_FILE names is mounted from the
// given Secret's key.
func checkKeyVolume(t *testing.T, sts *appsv1.StatefulSet, c *corev1.Container, secret, key string) {
	t.Helper()
	file, _ := envValue(c, "EL_SECRET_KEY_FILE")
	for _, m := range c.VolumeMounts {
		if !strings.HasPrefix(file, m.MountPath+"/") {
			continue
		}
		for _, v := range sts.Spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			if v.Secret.SecretName != secret {
				t.Errorf("key volume from Secret %q, want %q", v.Secret.SecretName, secret)
			}
			want := strings.TrimPrefix(file, m.MountPath+"/")
			if len(v.Secret.Items) != 1 || v.Secret.Items[0].Key != key || v.Secret.Items[0].Path != want {
				t.Errorf("key volume items %+v, want %s -> %s", v.Secret.Items, key, want)
			}
			return
		}
	}
	t.Errorf("EL_SECRET_KEY_FILE %q is on no secret volume", file)
}

func TestIngressWithPathPrefix(t *testing.T) {
	o := mustRender(t, values(t, "config.pathPrefix=/exchangelistener", "ingress.enabled=true", "ingress.className=nginx",
		"ingress.hosts[0].host=crm.example.com", "ingress.tls[0].secretName=crm-tls", "ingress.tls[0].hosts[0]=crm.example.com"))
	c := mainContainer(t, get[*appsv1.StatefulSet](t, o, "StatefulSet", fullname))
	wantEnv(t, c, "EL_PATH_PREFIX", "/exchangelistener")
	ing := get[*networkingv1.Ingress](t, o, "Ingress", fullname)
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
		t.Errorf("ingressClassName %v", ing.Spec.IngressClassName)
	}
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "crm.example.com" {
		t.Fatalf("rules %+v", ing.Spec.Rules)
	}
	checkIngressPath(t, o, ing.Spec.Rules[0], "/exchangelistener")
	if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "crm-tls" {
		t.Errorf("tls %+v", ing.Spec.TLS)
	}
	if !strings.Contains(o.notes, "https://crm.example.com/exchangelistener/api/listeners") {
		t.Errorf("NOTES miss the ingress URL:\n%s", o.notes)
	}
}

// checkIngressPath: one Prefix path to the chart's Service on a port the
// Service has.
func checkIngressPath(t *testing.T, o objects, rule networkingv1.IngressRule, path string) {
	t.Helper()
	if rule.HTTP == nil || len(rule.HTTP.Paths) != 1 {
		t.Fatalf("rule %+v", rule)
	}
	p := rule.HTTP.Paths[0]
	if p.Path != path || p.PathType == nil || *p.PathType != networkingv1.PathTypePrefix {
		t.Errorf("ingress path %q %v, want %q Prefix", p.Path, p.PathType, path)
	}
	svc := get[*corev1.Service](t, o, "Service", fullname)
	if b := p.Backend.Service; b == nil || b.Name != svc.Name || b.Port.Number != svc.Spec.Ports[0].Port {
		t.Errorf("ingress backend %+v, want %s:%d", b, svc.Name, svc.Spec.Ports[0].Port)
	}
}

func TestHPAOnCPU(t *testing.T) {
	o := mustRender(t, values(t, append(cluster, "autoscaling.enabled=true", "autoscaling.minReplicas=2", "autoscaling.maxReplicas=8")...))
	sts := get[*appsv1.StatefulSet](t, o, "StatefulSet", fullname)
	if sts.Spec.Replicas != nil {
		t.Errorf("replicas %d set while the HPA owns them", *sts.Spec.Replicas)
	}
	hpa := get[*autoscalingv2.HorizontalPodAutoscaler](t, o, "HorizontalPodAutoscaler", fullname)
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != 2 || hpa.Spec.MaxReplicas != 8 {
		t.Errorf("replicas %v..%d, want 2..8", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
	}
	if len(hpa.Spec.Metrics) != 1 {
		t.Fatalf("metrics %+v, want CPU only", hpa.Spec.Metrics)
	}
	m := hpa.Spec.Metrics[0]
	if m.Type != autoscalingv2.ResourceMetricSourceType || m.Resource == nil || m.Resource.Name != corev1.ResourceCPU ||
		m.Resource.Target.Type != autoscalingv2.UtilizationMetricType || m.Resource.Target.AverageUtilization == nil || *m.Resource.Target.AverageUtilization != 70 {
		t.Errorf("metric %+v, want CPU utilization 70", m)
	}
	// The slow scale-down the chart promises (each removed pod hands over).
	if b := hpa.Spec.Behavior; b == nil || b.ScaleDown == nil || len(b.ScaleDown.Policies) == 0 || b.ScaleDown.Policies[0].Value != 1 {
		t.Errorf("behavior %+v", b)
	}
	absent(t, o, "ScaledObject")
}

func TestHPAOnSubscriptions(t *testing.T) {
	o := mustRender(t, values(t, append(cluster, "autoscaling.enabled=true", "autoscaling.targetCPUUtilizationPercentage=",
		"autoscaling.subscriptions.enabled=true", "autoscaling.subscriptions.averageValue=5000")...))
	hpa := get[*autoscalingv2.HorizontalPodAutoscaler](t, o, "HorizontalPodAutoscaler", fullname)
	if len(hpa.Spec.Metrics) != 1 {
		t.Fatalf("metrics %+v, want the subscriptions metric only", hpa.Spec.Metrics)
	}
	m := hpa.Spec.Metrics[0]
	if m.Type != autoscalingv2.PodsMetricSourceType || m.Pods == nil {
		t.Fatalf("metric %+v, want type Pods", m)
	}
	if m.Pods.Metric.Name != "emaillistener_subscriptions" || m.Pods.Metric.Selector == nil ||
		m.Pods.Metric.Selector.MatchLabels["state"] != "exists" || len(m.Pods.Metric.Selector.MatchLabels) != 1 {
		t.Errorf("metric identifier %+v, want emaillistener_subscriptions{state=exists}", m.Pods.Metric)
	}
	if m.Pods.Target.Type != autoscalingv2.AverageValueMetricType || m.Pods.Target.AverageValue == nil || m.Pods.Target.AverageValue.Value() != 5000 {
		t.Errorf("target %+v, want average 5000", m.Pods.Target)
	}
}

func TestKEDAScaledObject(t *testing.T) {
	o := mustRender(t, values(t, append(cluster, "keda.enabled=true", "keda.minReplicaCount=2", "keda.maxReplicaCount=9",
		"keda.prometheus.serverAddress=http://prometheus.monitoring:9090", "keda.prometheus.threshold=6000",
		"keda.prometheus.authenticationRef.name=prom-auth")...))
	sts := get[*appsv1.StatefulSet](t, o, "StatefulSet", fullname)
	if sts.Spec.Replicas != nil {
		t.Errorf("replicas %d set while KEDA owns them", *sts.Spec.Replicas)
	}
	absent(t, o, "HorizontalPodAutoscaler") // KEDA creates its own
	so := get[map[string]any](t, o, "ScaledObject", fullname)
	ref := field(t, so, "spec", "scaleTargetRef")
	if r := ref.(map[string]any); r["kind"] != "StatefulSet" || r["name"] != sts.Name || r["apiVersion"] != "apps/v1" {
		t.Errorf("scaleTargetRef %v", r)
	}
	if min, max := field(t, so, "spec", "minReplicaCount"), field(t, so, "spec", "maxReplicaCount"); min != 2.0 || max != 9.0 {
		t.Errorf("replica counts %v..%v, want 2..9", min, max)
	}
	trig := field(t, so, "spec", "triggers", 0).(map[string]any)
	if trig["type"] != "prometheus" || trig["metricType"] != "AverageValue" {
		t.Errorf("trigger %v", trig)
	}
	md := trig["metadata"].(map[string]any)
	for k, v := range md {
		if _, ok := v.(string); !ok {
			t.Errorf("trigger metadata %s = %v (%T): KEDA wants strings", k, v, v)
		}
	}
	if md["serverAddress"] != "http://prometheus.monitoring:9090" || md["threshold"] != "6000" {
		t.Errorf("trigger metadata %v", md)
	}
	q, _ := md["query"].(string)
	for _, want := range []string{`sum(emaillistener_subscriptions{`, `state="exists"`, `namespace="` + namespace + `"`, `pod=~"` + fullname + `-[0-9]+"`} {
		if !strings.Contains(q, want) {
			t.Errorf("query %q lacks %s", q, want)
		}
	}
	if field(t, trig, "authenticationRef", "name") != "prom-auth" {
		t.Errorf("authenticationRef %v", trig["authenticationRef"])
	}
	if field(t, so, "spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown") == nil {
		t.Error("no scale-down behavior")
	}
}

func TestServiceMonitor(t *testing.T) {
	o := mustRender(t, values(t, "serviceMonitor.enabled=true", "serviceMonitor.labels.release=kube-prometheus-stack"))
	sm := get[map[string]any](t, o, "ServiceMonitor", fullname)
	if field(t, sm, "metadata", "labels", "release") != "kube-prometheus-stack" {
		t.Error("serviceMonitor.labels not applied")
	}
	ep := field(t, sm, "spec", "endpoints", 0).(map[string]any)
	if ep["path"] != "/metrics" || ep["interval"] != "30s" {
		t.Errorf("endpoint %v", ep)
	}
	// The endpoint's port names a port of the selected Service; the headless
	// one is excluded so each pod is scraped once.
	sel := field(t, sm, "spec", "selector", "matchLabels").(map[string]any)
	matched := 0
	for _, name := range []string{fullname, fullname + "-headless"} {
		svc := get[*corev1.Service](t, o, "Service", name)
		ok := true
		for k, v := range sel {
			ok = ok && svc.Labels[k] == v
		}
		if _, headless := svc.Labels["emaillistener.io/headless"]; ok && !headless {
			matched++
			if svc.Spec.Ports[0].Name != ep["port"] {
				t.Errorf("endpoint port %v, service port %q", ep["port"], svc.Spec.Ports[0].Name)
			}
		}
	}
	if matched != 1 {
		t.Errorf("ServiceMonitor selects %d Services, want 1", matched)
	}
	if ns := field(t, sm, "spec", "namespaceSelector", "matchNames", 0); ns != namespace {
		t.Errorf("namespaceSelector %v", ns)
	}
}

func TestNetworkPolicy(t *testing.T) {
	o := mustRender(t, values(t, "networkPolicy.enabled=true",
		"networkPolicy.from[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=creatio"))
	np := get[*networkingv1.NetworkPolicy](t, o, "NetworkPolicy", fullname)
	if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].Ports) != 1 {
		t.Fatalf("ingress %+v", np.Spec.Ingress)
	}
	// The pod's port: policies see traffic after the Service's 80 -> 10000.
	p := np.Spec.Ingress[0].Ports[0]
	if p.Port == nil || p.Port.IntValue() != 10000 || p.Protocol == nil || *p.Protocol != corev1.ProtocolTCP {
		t.Errorf("port %+v, want TCP 10000", p)
	}
	from := np.Spec.Ingress[0].From
	if len(from) != 1 || from[0].NamespaceSelector == nil || from[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "creatio" {
		t.Errorf("from %+v", from)
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("policyTypes %v: egress must stay open (mail servers, Creatio)", np.Spec.PolicyTypes)
	}
}

// TestOriginalChartValues uses the values of Creatio's own chart, as its
// documentation has operators set them.
func TestOriginalChartValues(t *testing.T) {
	o := mustRender(t, values(t, "replicaCount=2", "service.type=NodePort", "service.nodePort=30080",
		"env.host=10.0.0.5", "env.port=6380", "env.base=3", "ingress.enabled=true", "ingress.path=/exchangelistener",
		"secretKey.existingSecret=el-key"))
	sts := get[*appsv1.StatefulSet](t, o, "StatefulSet", fullname)
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", sts.Spec.Replicas)
	}
	c := mainContainer(t, sts)
	wantEnv(t, c, "ExchangeListenerRedisHost", "10.0.0.5:6380")
	wantEnv(t, c, "ExchangeListenerRedisDatabase", "3")
	wantEnv(t, c, "EL_PATH_PREFIX", "/exchangelistener")
	wantNoEnv(t, c, "host", "port", "base", "EL_REDIS_URL")
	svc := get[*corev1.Service](t, o, "Service", fullname)
	if svc.Spec.Type != corev1.ServiceTypeNodePort {
		t.Errorf("service type %s", svc.Spec.Type)
	}
	if p := svc.Spec.Ports[0]; p.NodePort != 30080 || p.Port != 80 || p.TargetPort.StrVal != "http" {
		t.Errorf("service port %+v, want 80 -> http on node port 30080", p)
	}
	ing := get[*networkingv1.Ingress](t, o, "Ingress", fullname)
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "" {
		t.Fatalf("rules %+v, want one for any host", ing.Spec.Rules)
	}
	checkIngressPath(t, o, ing.Spec.Rules[0], "/exchangelistener")

	// env.host alone: the service's default port applies; env.base defaults to 0.
	o = mustRender(t, values(t, "env.host=redis.creatio", "secretKey.existingSecret=el-key"))
	c = mainContainer(t, get[*appsv1.StatefulSet](t, o, "StatefulSet", fullname))
	wantEnv(t, c, "ExchangeListenerRedisHost", "redis.creatio")
	wantEnv(t, c, "ExchangeListenerRedisDatabase", "0")
}

func TestGracePeriodFollowsShutdownTimeout(t *testing.T) {
	// A longer timeout with a grace period that fits it renders, and the pod
	// gets the timeout the check was made against.
	o := mustRender(t, values(t, "config.shutdownTimeout=1m", "terminationGracePeriodSeconds=75"))
	c := mainContainer(t, get[*appsv1.StatefulSet](t, o, "StatefulSet", fullname))
	wantEnv(t, c, "EL_SHUTDOWN_TIMEOUT", "1m")
	o = mustRender(t, values(t, "env.EL_SHUTDOWN_TIMEOUT=1m30s", "terminationGracePeriodSeconds=100",
		"lifecycle.preStop.sleep.seconds=0"))
	c = mainContainer(t, get[*appsv1.StatefulSet](t, o, "StatefulSet", fullname))
	wantEnv(t, c, "EL_SHUTDOWN_TIMEOUT", "1m30s")
}

// TestRenderErrors: combinations the chart must refuse, each with a message
// that names what to change.
func TestRenderErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		sets []string
		want string
	}{
		{"hpa and keda", append(slices.Clone(cluster), "autoscaling.enabled=true", "keda.enabled=true", "keda.prometheus.serverAddress=http://p:9090"), "mutually exclusive"},
		{"grace equal to shutdown timeout", []string{"terminationGracePeriodSeconds=20"}, "terminationGracePeriodSeconds (20) must be at least 30"},
		{"grace shorter than env timeout", []string{"env.EL_SHUTDOWN_TIMEOUT=1m"}, "terminationGracePeriodSeconds (45) must be at least 70"},
		{"grace without room for preStop", []string{"lifecycle.preStop.sleep.seconds=20"}, "must be at least 50"},
		{"shutdown timeout not a duration", []string{"config.shutdownTimeout=20sec"}, "not a duration"},
		{"env timeout without unit", []string{"env.EL_SHUTDOWN_TIMEOUT=20"}, "not a duration"},
		{"replicas without redis", []string{"replicaCount=3"}, "Redis is required"},
		{"redis without key", []string{"redis.url=redis://r:6379"}, "no secret key"},
		{"keda without redis", []string{"keda.enabled=true", "keda.prometheus.serverAddress=http://p:9090"}, "keda.enabled needs Redis"},
		{"keda without prometheus", append(slices.Clone(cluster), "keda.enabled=true"), "keda.prometheus.serverAddress"},
		{"keda scaled to zero", append(slices.Clone(cluster), "keda.enabled=true", "keda.prometheus.serverAddress=http://p:9090", "keda.minReplicaCount=0"), "minReplicaCount"},
		{"node port on cluster ip", []string{"service.nodePort=30080"}, "service.nodePort needs"},
		{"env.host and redis.url", append(slices.Clone(cluster), "env.host=r"), "set only one of"},
		{"env.port without env.host", []string{"env.port=6379"}, "need env.host"},
		{"hpa without metric", append(slices.Clone(cluster), "autoscaling.enabled=true", "autoscaling.targetCPUUtilizationPercentage="), "at least one metric"},
		{"misspelt keda key (schema)", []string{"keda.serverAddress=x"}, "schema"},
		{"ingress path without slash (schema)", []string{"ingress.path=exchangelistener"}, "schema"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, values(t, tc.sets...))
			if err == nil {
				t.Fatalf("rendered; want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}
