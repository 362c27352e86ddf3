// Package k8s_test checks the Kubernetes manifests of k8s/: it renders every
// kustomization in-process (sigs.k8s.io/kustomize/api), decodes every object
// strictly into its k8s.io/api type, so that a misspelt field fails, and
// checks what kubeconform would not: images, resources, probes, security
// contexts, the args of the gps binary, selectors and references. It also
// checks k8s/nats-values.yaml and the Grafana dashboard against the metrics
// of pkg/telemetry.
package k8s_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/telemetry"
)

// image is the one image every container runs.
const image = "ghcr.io/gpsscan/gps"

// services are what `gps <service>` accepts as the first argument.
var services = []string{"seeder", "modeler", "predictor", "prober", "inventory"}

// subcommands are the words after the service's name that start it
// (`gps inventory serve`; `gps inventory` alone prints the bucket).
var subcommands = map[string][]string{"inventory": {"serve"}}

// singletons are the services whose Deployment must run at most one pod, and
// never two at once (Recreate): one durable consumer over all of RESULTS,
// or (the seeder in cycles) one writer of the cycle.
var singletons = []string{"modeler", "predictor", "inventory", "seeder"}

// knownFlags are the flags of `gps <service>` the manifests may pass. Keep in
// step with cmd/gps: a flag the binary does not know makes the pod exit 2.
var knownFlags = []string{
	"nats", "creds", "log-format", "log-level", "replicas", "allow-file", "block-file",
	"metrics-addr", "import", "hitrate", "step", "data", "shutdown-timeout", "shutdown-delay", "stream-max-age", "stream-max-bytes", "drain-timeout",
	"cycle", "cycle-seed-frac", "sweep-prior-frac",
	"world", "await-predictions", // e2e/overlay: the prober answers from a lab world
}

// fileFlags name a file the container must find in a mounted volume.
var fileFlags = []string{"creds", "allow-file", "block-file", "import"}

// kustomization is one directory the test renders and what it expects there.
type kustomization struct {
	dir       string
	namespace string          // every object's namespace ("" for the base)
	tag       string          // image tag
	replicas  map[string]int  // component -> Deployment replicas (exact)
	minProber int             // prober replicas at least
	external  map[string]bool // "Kind/name" referenced but created outside the render
	monitor   bool            // a ServiceMonitor is rendered
	pdb       []string        // components with a PodDisruptionBudget
	spread    []string        // components with topology spread constraints
}

var kustomizations = []kustomization{
	{
		dir: "base", tag: "0.1.0",
		replicas: map[string]int{"modeler": 1, "predictor": 1, "inventory": 1, "prober": 1},
		external: map[string]bool{"Secret/gps-nats-creds": true},
		monitor:  true,
	},
	{
		dir: "overlays/dev", namespace: "gps-dev", tag: "dev",
		replicas: map[string]int{"modeler": 1, "predictor": 1, "inventory": 1, "prober": 1},
	},
	{
		dir: "overlays/prod", namespace: "gps", tag: "0.1.0",
		replicas:  map[string]int{"modeler": 1, "predictor": 1, "inventory": 1},
		minProber: 2,
		// The operator creates the credentials (k8s/overlays/prod/kustomization.yaml).
		external: map[string]bool{"Secret/gps-nats-creds": true},
		monitor:  true,
		pdb:      []string{"prober"},
		spread:   []string{"prober"},
	},
	{
		// prod in the single-node test cluster of e2e/run.sh.
		dir: "e2e/overlay", namespace: "gps", tag: "e2e",
		replicas: map[string]int{"modeler": 1, "predictor": 1, "inventory": 1, "prober": 2},
		external: map[string]bool{"Secret/gps-nats-creds": true},
		pdb:      []string{"prober"},
		spread:   []string{"prober"},
	},
}

// object is one rendered object, decoded.
type object struct {
	kind, name string
	raw        []byte
	typed      any            // *appsv1.Deployment, ... (nil for a CRD)
	u          map[string]any // the object as unstructured JSON
}

// rendered is the output of one kustomization.
type rendered struct {
	objs   []object
	byKind map[string][]object
}

func (r *rendered) get(kind, name string) (object, bool) {
	for _, o := range r.byKind[kind] {
		if o.name == name {
			return o, true
		}
	}
	return object{}, false
}

// render runs kustomize on dir (relative to k8s/ or absolute).
func render(dir string) ([]object, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", dir, err)
	}
	var objs []object
	for _, res := range m.Resources() {
		raw, err := res.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("marshal %s/%s: %w", res.GetKind(), res.GetName(), err)
		}
		objs = append(objs, object{kind: res.GetKind(), name: res.GetName(), raw: raw})
	}
	return objs, nil
}

// newTyped returns the k8s.io/api type of apiVersion and kind, or nil for a
// kind the test checks as unstructured (CRDs).
func newTyped(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 Secret":
		return &corev1.Secret{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "v1 PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, nil
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "batch/v1 Job":
		return &batchv1.Job{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return nil, nil
	}
	return nil, fmt.Errorf("no strict decoder for %s %s: add its type to newTyped", apiVersion, kind)
}

// decode decodes every object strictly: unknown or duplicate fields, and
// fields in the wrong case, are errors.
func decode(objs []object) (*rendered, error) {
	r := &rendered{byKind: map[string][]object{}}
	for _, o := range objs {
		if err := json.Unmarshal(o.raw, &o.u); err != nil {
			return nil, fmt.Errorf("decode %s/%s: %w", o.kind, o.name, err)
		}
		apiVersion, _ := o.u["apiVersion"].(string)
		typed, err := newTyped(apiVersion, o.kind)
		if err != nil {
			return nil, err
		}
		if typed != nil {
			strict, err := sigsjson.UnmarshalStrict(o.raw, typed)
			if err != nil {
				return nil, fmt.Errorf("decode %s/%s: %w", o.kind, o.name, err)
			}
			if len(strict) > 0 {
				return nil, fmt.Errorf("decode %s/%s strictly: %v", o.kind, o.name, strict)
			}
			o.typed = typed
		}
		r.objs = append(r.objs, o)
		r.byKind[o.kind] = append(r.byKind[o.kind], o)
	}
	return r, nil
}

func renderDecode(t *testing.T, dir string) *rendered {
	t.Helper()
	objs, err := render(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decode(objs)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// workload is a pod template and where it comes from.
type workload struct {
	kind, name, component string
	replicas              int
	template              corev1.PodTemplateSpec
	selector              *metav1.LabelSelector
}

func workloads(r *rendered) []workload {
	var ws []workload
	for _, o := range r.byKind["Deployment"] {
		d := o.typed.(*appsv1.Deployment)
		n := 1
		if d.Spec.Replicas != nil {
			n = int(*d.Spec.Replicas)
		}
		ws = append(ws, workload{kind: "Deployment", name: d.Name, component: d.Spec.Template.Labels["app.kubernetes.io/component"],
			replicas: n, template: d.Spec.Template, selector: d.Spec.Selector})
	}
	for _, o := range r.byKind["Job"] {
		j := o.typed.(*batchv1.Job)
		ws = append(ws, workload{kind: "Job", name: j.Name, component: j.Spec.Template.Labels["app.kubernetes.io/component"],
			replicas: 1, template: j.Spec.Template, selector: j.Spec.Selector})
	}
	return ws
}

// lint returns what is wrong with a render; k says what the kustomization
// expects.
func lint(k kustomization, r *rendered) []string {
	var p []string
	add := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }

	for _, o := range r.objs {
		ns, _ := o.u["metadata"].(map[string]any)["namespace"].(string)
		if ns != k.namespace {
			add("%s/%s: namespace %q, want %q", o.kind, o.name, ns, k.namespace)
		}
		lbls, _ := o.u["metadata"].(map[string]any)["labels"].(map[string]any)
		if lbls["app.kubernetes.io/part-of"] != "gps" {
			add("%s/%s: no label app.kubernetes.io/part-of=gps", o.kind, o.name)
		}
	}

	ws := workloads(r)
	seen := map[string]bool{}
	for _, w := range ws {
		where := w.kind + "/" + w.name
		if !slices.Contains(services, w.component) {
			add("%s: component label %q is not a service", where, w.component)
		}
		seen[w.component] = true
		if w.kind == "Deployment" {
			if w.selector == nil || len(w.selector.MatchLabels) == 0 {
				add("%s: no selector", where)
			} else if sel, err := metav1.LabelSelectorAsSelector(w.selector); err != nil {
				add("%s: selector: %v", where, err)
			} else if !sel.Matches(labels.Set(w.template.Labels)) {
				add("%s: selector %v does not match its pod labels %v", where, w.selector.MatchLabels, w.template.Labels)
			}
			if want, ok := k.replicas[w.component]; ok && w.replicas != want {
				add("%s: %d replicas, want %d", where, w.replicas, want)
			}
			if w.component == "prober" && w.replicas < k.minProber {
				add("%s: %d replicas, want at least %d", where, w.replicas, k.minProber)
			}
		}
		p = append(p, lintPod(k, r, w)...)
	}
	for _, s := range services {
		if !seen[s] {
			add("no workload runs %s", s)
		}
	}
	for _, o := range r.byKind["Deployment"] {
		d := o.typed.(*appsv1.Deployment)
		c := d.Spec.Template.Labels["app.kubernetes.io/component"]
		if slices.Contains(singletons, c) {
			if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
				add("Deployment/%s: strategy %q, want Recreate (a singleton must not overlap its successor)", d.Name, d.Spec.Strategy.Type)
			}
			if d.Spec.Replicas != nil && *d.Spec.Replicas > 1 {
				add("Deployment/%s: %d replicas of a singleton", d.Name, *d.Spec.Replicas)
			}
		}
		hasSpread := len(d.Spec.Template.Spec.TopologySpreadConstraints) > 0
		if slices.Contains(k.spread, c) != hasSpread {
			add("Deployment/%s: topology spread constraints %v, want %v", d.Name, hasSpread, slices.Contains(k.spread, c))
		}
		for _, tsc := range d.Spec.Template.Spec.TopologySpreadConstraints {
			sel, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
			if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				add("Deployment/%s: topology spread on %s does not select its own pods", d.Name, tsc.TopologyKey)
			}
		}
	}
	for _, o := range r.byKind["Job"] {
		j := o.typed.(*batchv1.Job)
		if j.Spec.Suspend == nil || !*j.Spec.Suspend {
			add("Job/%s: not suspended (applying the manifests must not start an import)", j.Name)
		}
		if rp := j.Spec.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyNever && rp != corev1.RestartPolicyOnFailure {
			add("Job/%s: restartPolicy %q", j.Name, rp)
		}
	}

	// Services select pods that declare the target port.
	for _, o := range r.byKind["Service"] {
		s := o.typed.(*corev1.Service)
		n := 0
		for _, w := range ws {
			if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(w.template.Labels)) {
				continue
			}
			n++
			for _, sp := range s.Spec.Ports {
				if sp.TargetPort.StrVal != "" && !podHasPort(w.template.Spec, sp.TargetPort.StrVal, 0) {
					add("Service/%s: port %s targets %q, which %s/%s does not declare", s.Name, sp.Name, sp.TargetPort.StrVal, w.kind, w.name)
				}
			}
		}
		if n == 0 {
			add("Service/%s: selector %v matches no pod", s.Name, s.Spec.Selector)
		}
	}

	// PodDisruptionBudgets select exactly one scaled-out Deployment.
	var pdbFor []string
	for _, o := range r.byKind["PodDisruptionBudget"] {
		b := o.typed.(*policyv1.PodDisruptionBudget)
		sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
		if err != nil {
			add("PodDisruptionBudget/%s: selector: %v", b.Name, err)
			continue
		}
		var hit []workload
		for _, w := range ws {
			if w.kind == "Deployment" && sel.Matches(labels.Set(w.template.Labels)) {
				hit = append(hit, w)
			}
		}
		if len(hit) != 1 {
			add("PodDisruptionBudget/%s: selects %d Deployments, want 1", b.Name, len(hit))
			continue
		}
		if hit[0].replicas < 2 {
			add("PodDisruptionBudget/%s: covers %s with %d replica(s): it would block node drains", b.Name, hit[0].name, hit[0].replicas)
		}
		if b.Spec.MaxUnavailable == nil && b.Spec.MinAvailable == nil {
			add("PodDisruptionBudget/%s: neither maxUnavailable nor minAvailable", b.Name)
		}
		pdbFor = append(pdbFor, hit[0].component)
	}
	sort.Strings(pdbFor)
	if want := slices.Sorted(slices.Values(k.pdb)); !slices.Equal(pdbFor, want) {
		add("PodDisruptionBudgets for %v, want %v", pdbFor, want)
	}

	p = append(p, lintMonitor(k, r)...)
	p = append(p, lintDashboardConfigMap(r)...)
	return p
}

// lintPod checks one pod template: images, args, env and file references,
// probes, resources and security.
func lintPod(k kustomization, r *rendered, w workload) []string {
	var p []string
	where := w.kind + "/" + w.name
	add := func(format string, a ...any) { p = append(p, where+": "+fmt.Sprintf(format, a...)) }
	spec := w.template.Spec

	if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds < 30 {
		add("terminationGracePeriodSeconds must be set, at least 30 (the services drain on SIGTERM)")
	}
	if spec.ServiceAccountName == "" {
		add("no serviceAccountName")
	} else if _, ok := r.get("ServiceAccount", spec.ServiceAccountName); !ok {
		add("ServiceAccount %q is not in the render", spec.ServiceAccountName)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		add("automountServiceAccountToken must be false (the services never call the API)")
	}
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if len(spec.InitContainers) > 0 {
		add("init containers are not expected")
	}

	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
		switch {
		case v.ConfigMap != nil:
			if _, ok := r.get("ConfigMap", v.ConfigMap.Name); !ok && !k.external["ConfigMap/"+v.ConfigMap.Name] {
				add("volume %s: ConfigMap %q is not in the render", v.Name, v.ConfigMap.Name)
			}
		case v.Secret != nil:
			if _, ok := r.get("Secret", v.Secret.SecretName); !ok && !k.external["Secret/"+v.Secret.SecretName] {
				add("volume %s: Secret %q is not in the render", v.Name, v.Secret.SecretName)
			}
		case v.PersistentVolumeClaim != nil:
			if _, ok := r.get("PersistentVolumeClaim", v.PersistentVolumeClaim.ClaimName); !ok {
				add("volume %s: PersistentVolumeClaim %q is not in the render", v.Name, v.PersistentVolumeClaim.ClaimName)
			}
		case v.EmptyDir != nil:
		default:
			add("volume %s: unexpected volume source", v.Name)
		}
	}

	if len(spec.Containers) != 1 {
		add("%d containers, want 1", len(spec.Containers))
	}
	for _, c := range spec.Containers {
		add := func(format string, a ...any) {
			p = append(p, where+" container "+c.Name+": "+fmt.Sprintf(format, a...))
		}

		// Image: ours, with a tag that is not "latest", or a digest.
		repo, tag, ok := strings.Cut(c.Image, ":")
		if i := strings.Index(c.Image, "@"); i >= 0 {
			repo, tag, ok = c.Image[:i], c.Image[i+1:], strings.HasPrefix(c.Image[i+1:], "sha256:")
		}
		switch {
		case repo != image:
			add("image %q, want %s", c.Image, image)
		case !ok || tag == "" || tag == "latest":
			add("image %q has no pinned tag", c.Image)
		case k.tag != "" && tag != k.tag:
			add("image tag %q, want %q", tag, k.tag)
		}

		// Env: every reference resolves; collect values for $(VAR).
		env := map[string]string{}
		for _, e := range c.Env {
			switch {
			case e.ValueFrom == nil:
				env[e.Name] = e.Value
			case e.ValueFrom.ConfigMapKeyRef != nil:
				ref := e.ValueFrom.ConfigMapKeyRef
				o, ok := r.get("ConfigMap", ref.Name)
				if !ok {
					add("env %s: ConfigMap %q is not in the render", e.Name, ref.Name)
					continue
				}
				v, ok := o.typed.(*corev1.ConfigMap).Data[ref.Key]
				if !ok {
					add("env %s: ConfigMap %s has no key %q", e.Name, ref.Name, ref.Key)
				}
				env[e.Name] = v
			case e.ValueFrom.SecretKeyRef != nil:
				ref := e.ValueFrom.SecretKeyRef
				if o, ok := r.get("Secret", ref.Name); !ok {
					if !k.external["Secret/"+ref.Name] {
						add("env %s: Secret %q is not in the render", e.Name, ref.Name)
					}
				} else if _, ok := o.typed.(*corev1.Secret).Data[ref.Key]; !ok {
					add("env %s: Secret %s has no key %q", e.Name, ref.Name, ref.Key)
				}
			case e.ValueFrom.ResourceFieldRef != nil, e.ValueFrom.FieldRef != nil:
			}
		}

		// Args: `gps <service> --flag value ...`.
		if len(c.Args) == 0 {
			add("no args")
			continue
		}
		if len(c.Command) > 0 {
			add("command %v overrides the image's ENTRYPOINT", c.Command)
		}
		if c.Args[0] != w.component || !slices.Contains(services, c.Args[0]) {
			add("args start with %q, want the service %q", c.Args[0], w.component)
		}
		first := 1
		if sub := subcommands[w.component]; len(sub) > 0 {
			if len(c.Args) <= len(sub) || !slices.Equal(c.Args[1:1+len(sub)], sub) {
				add("args %v: want %q then %v", c.Args, w.component, sub)
			}
			first += len(sub)
		}
		if c.Name != w.component {
			add("container name %q, want %q (dashboards group by container)", c.Name, w.component)
		}
		flags := map[string]string{}
		for i := first; i < len(c.Args); i++ {
			a := c.Args[i]
			if !strings.HasPrefix(a, "-") {
				add("argument %q is not a flag (flag parsing stops there)", a)
				continue
			}
			name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if !slices.Contains(knownFlags, name) {
				add("unknown flag %q", a)
				continue
			}
			if !hasVal {
				if i+1 >= len(c.Args) {
					add("flag %s has no value", a)
					continue
				}
				i++
				val = c.Args[i]
			}
			if _, dup := flags[name]; dup {
				add("flag --%s given twice", name)
			}
			val, unresolved := expand(val, env)
			for _, u := range unresolved {
				add("flag --%s: $(%s) is not an env var of the container", name, u)
			}
			flags[name] = val
		}
		for _, f := range []string{"nats", "log-format", "metrics-addr"} {
			if _, ok := flags[f]; !ok {
				add("flag --%s missing", f)
			}
		}
		if flags["log-format"] != "json" {
			add("--log-format %q, want json", flags["log-format"])
		}
		if l, ok := flags["log-level"]; ok && !slices.Contains([]string{"debug", "info", "warn", "error"}, l) {
			add("--log-level %q, want debug, info, warn or error", l)
		}
		if n, err := strconv.Atoi(flags["replicas"]); flags["replicas"] != "" && (err != nil || n < 1 || n > 5) {
			add("--replicas %q, want 1 to 5 (JetStream's limit)", flags["replicas"])
		}
		if n := flags["nats"]; !strings.HasPrefix(n, "nats://") && !strings.HasPrefix(n, "tls://") {
			add("--nats %q is not a nats:// or tls:// URL", n)
		}
		cycles := w.component == "seeder" && w.kind == "Deployment"
		if slices.Contains([]string{"prober", "modeler", "predictor", "inventory"}, w.component) || cycles {
			for _, f := range []string{"allow-file", "block-file"} {
				if flags[f] == "" {
					add("the %s needs --%s (the prober's lists)", w.component, f)
				}
			}
		}
		switch {
		case w.component == "seeder" && w.kind == "Job" && flags["import"] == "":
			add("the seeder Job needs --import")
		case cycles && flags["cycle"] == "":
			add("the seeder Deployment needs --cycle (a seeder without it exits when done, and the Deployment would start it again)")
		}
		for _, f := range fileFlags {
			if path := flags[f]; path != "" {
				for _, e := range checkFile(k, r, c, volumes, path) {
					add("--%s %s: %s", f, path, e)
				}
			}
		}

		// Ports and probes.
		var metricsPort int32
		for _, cp := range c.Ports {
			if cp.Name == "metrics" {
				metricsPort = cp.ContainerPort
			}
		}
		if metricsPort != 9090 {
			add("no container port named metrics on 9090")
		}
		if addr := flags["metrics-addr"]; addr != fmt.Sprintf(":%d", metricsPort) && !strings.HasSuffix(addr, fmt.Sprintf(":%d", metricsPort)) {
			add("--metrics-addr %q does not serve the metrics port %d", addr, metricsPort)
		}
		for _, pr := range []struct {
			what, path string
			probe      *corev1.Probe
		}{{"liveness", "/healthz", c.LivenessProbe}, {"readiness", "/readyz", c.ReadinessProbe}} {
			switch {
			case pr.probe == nil:
				add("no %s probe", pr.what)
			case pr.probe.HTTPGet == nil:
				add("%s probe is not an HTTP GET", pr.what)
			default:
				g := pr.probe.HTTPGet
				if g.Path != pr.path {
					add("%s probe path %q, want %q", pr.what, g.Path, pr.path)
				}
				if !podHasPort(corev1.PodSpec{Containers: []corev1.Container{c}}, g.Port.StrVal, g.Port.IntVal) {
					add("%s probe port %s is not a declared container port", pr.what, g.Port.String())
				}
			}
		}

		// Resources: requests and limits of cpu and memory, requests <= limits.
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, okReq := c.Resources.Requests[res]
			lim, okLim := c.Resources.Limits[res]
			if !okReq || !okLim {
				add("%s needs a request and a limit", res)
				continue
			}
			if req.Cmp(lim) > 0 {
				add("%s request %s above its limit %s", res, req.String(), lim.String())
			}
			if req.Sign() <= 0 {
				add("%s request %s", res, req.String())
			}
		}

		// Security.
		sc := c.SecurityContext
		if sc == nil {
			add("no securityContext")
			continue
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			add("allowPrivilegeEscalation must be false")
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			add("readOnlyRootFilesystem must be true")
		}
		if sc.Privileged != nil && *sc.Privileged {
			add("privileged")
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			add("capabilities must drop ALL")
		} else {
			var added []string
			for _, a := range sc.Capabilities.Add {
				added = append(added, string(a))
			}
			want := []string(nil)
			if w.component == "prober" {
				want = []string{"NET_RAW"}
			}
			if !slices.Equal(added, want) {
				add("capabilities add %v, want %v", added, want)
			}
		}
		seccomp := psc.SeccompProfile
		if sc.SeccompProfile != nil {
			seccomp = sc.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			add("seccomp profile must be RuntimeDefault")
		}
		nonRoot := psc.RunAsNonRoot
		if sc.RunAsNonRoot != nil {
			nonRoot = sc.RunAsNonRoot
		}
		uid := psc.RunAsUser
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if w.component == "prober" {
			// Root with NET_RAW only: the documented choice in base/prober.yaml.
			if uid == nil || *uid != 0 || nonRoot == nil || *nonRoot {
				add("the prober runs as uid 0 with runAsNonRoot false, explicitly (see base/prober.yaml)")
			}
		} else {
			if nonRoot == nil || !*nonRoot {
				add("runAsNonRoot must be true")
			}
			if uid == nil || *uid == 0 {
				add("runAsUser must be a non-zero uid (runAsNonRoot cannot check a named USER)")
			}
		}
	}
	return p
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand replaces $(VAR) as the kubelet does; it returns the names it could
// not resolve.
func expand(s string, env map[string]string) (string, []string) {
	var missing []string
	out := varRef.ReplaceAllStringFunc(s, func(m string) string {
		name := varRef.FindStringSubmatch(m)[1]
		v, ok := env[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		return v
	})
	return out, missing
}

// checkFile checks that path lies in a volume mounted in c, and, for a
// ConfigMap or Secret volume in the render, that the file is one of its keys.
func checkFile(k kustomization, r *rendered, c corev1.Container, volumes map[string]corev1.Volume, path string) []string {
	for _, m := range c.VolumeMounts {
		rel, err := filepath.Rel(m.MountPath, path)
		if err != nil || strings.HasPrefix(rel, "..") || rel == "." {
			continue
		}
		v, ok := volumes[m.Name]
		if !ok {
			return []string{fmt.Sprintf("volume %q is not declared", m.Name)}
		}
		if !m.ReadOnly {
			return []string{fmt.Sprintf("mount %s is not read-only", m.MountPath)}
		}
		switch {
		case v.ConfigMap != nil:
			if o, ok := r.get("ConfigMap", v.ConfigMap.Name); ok {
				if _, ok := o.typed.(*corev1.ConfigMap).Data[rel]; !ok {
					return []string{fmt.Sprintf("ConfigMap %s has no key %q", v.ConfigMap.Name, rel)}
				}
			}
		case v.Secret != nil:
			if o, ok := r.get("Secret", v.Secret.SecretName); ok {
				if _, ok := o.typed.(*corev1.Secret).Data[rel]; !ok {
					return []string{fmt.Sprintf("Secret %s has no key %q", v.Secret.SecretName, rel)}
				}
			} else if !k.external["Secret/"+v.Secret.SecretName] {
				return []string{fmt.Sprintf("Secret %s is not in the render", v.Secret.SecretName)}
			}
		case v.PersistentVolumeClaim != nil:
		default:
			return []string{fmt.Sprintf("volume %s is neither a ConfigMap, a Secret nor a PersistentVolumeClaim", m.Name)}
		}
		return nil
	}
	return []string{"no volume is mounted there"}
}

func podHasPort(spec corev1.PodSpec, name string, number int32) bool {
	for _, c := range spec.Containers {
		for _, cp := range c.Ports {
			if (name != "" && cp.Name == name) || (name == "" && cp.ContainerPort == number) {
				return true
			}
		}
	}
	return false
}

// lintMonitor checks the ServiceMonitor, a CRD, as unstructured data: its
// fields are the ones prometheus-operator knows, and it selects the metrics
// Service and one of its named ports.
func lintMonitor(k kustomization, r *rendered) []string {
	var p []string
	add := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }
	mons := r.byKind["ServiceMonitor"]
	if k.monitor != (len(mons) > 0) {
		add("%d ServiceMonitors, want one: %v", len(mons), k.monitor)
	}
	knownSpec := []string{"selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels", "podTargetLabels", "sampleLimit"}
	knownEndpoint := []string{"port", "path", "scheme", "interval", "scrapeTimeout", "relabelings", "metricRelabelings", "honorLabels", "tlsConfig", "params"}
	for _, o := range mons {
		where := "ServiceMonitor/" + o.name
		if o.u["apiVersion"] != "monitoring.coreos.com/v1" {
			add("%s: apiVersion %v", where, o.u["apiVersion"])
		}
		for key := range o.u {
			if !slices.Contains([]string{"apiVersion", "kind", "metadata", "spec"}, key) {
				add("%s: unknown field %q", where, key)
			}
		}
		spec, _ := o.u["spec"].(map[string]any)
		for key := range spec {
			if !slices.Contains(knownSpec, key) {
				add("%s: unknown field spec.%s", where, key)
			}
		}
		sel, _ := spec["selector"].(map[string]any)
		ml, _ := sel["matchLabels"].(map[string]any)
		if len(ml) == 0 {
			add("%s: spec.selector.matchLabels is required", where)
		}
		want := labels.Set{}
		for key, v := range ml {
			s, _ := v.(string)
			want[key] = s
		}
		var svcs []*corev1.Service
		for _, so := range r.byKind["Service"] {
			s := so.typed.(*corev1.Service)
			if labels.SelectorFromSet(want).Matches(labels.Set(s.Labels)) {
				svcs = append(svcs, s)
			}
		}
		if len(svcs) == 0 {
			add("%s: selects no Service", where)
		}
		eps, _ := spec["endpoints"].([]any)
		if len(eps) == 0 {
			add("%s: spec.endpoints is required", where)
		}
		for i, e := range eps {
			ep, _ := e.(map[string]any)
			for key := range ep {
				if !slices.Contains(knownEndpoint, key) {
					add("%s: unknown field spec.endpoints[%d].%s", where, i, key)
				}
			}
			port, _ := ep["port"].(string)
			if ep["path"] != "/metrics" {
				add("%s: endpoints[%d].path %v, want /metrics", where, i, ep["path"])
			}
			for _, s := range svcs {
				if !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == port }) {
					add("%s: endpoints[%d].port %q is not a port of Service %s", where, i, port, s.Name)
				}
			}
		}
	}
	return p
}

// lintDashboardConfigMap checks the dashboard ConfigMap the Grafana sidecar
// loads: labelled, with a stable name, holding the JSON of the file.
func lintDashboardConfigMap(r *rendered) []string {
	want, err := os.ReadFile(filepath.Join("base", "grafana-dashboard.json"))
	if err != nil {
		return []string{err.Error()}
	}
	var p []string
	n := 0
	for _, o := range r.byKind["ConfigMap"] {
		cm := o.typed.(*corev1.ConfigMap)
		if cm.Labels["grafana_dashboard"] != "1" {
			continue
		}
		n++
		if cm.Name != "gps-grafana-dashboard" {
			p = append(p, fmt.Sprintf("dashboard ConfigMap %q: want the stable name gps-grafana-dashboard (no hash suffix)", cm.Name))
		}
		if cm.Data["gps.json"] != string(want) {
			p = append(p, fmt.Sprintf("dashboard ConfigMap %s: gps.json differs from base/grafana-dashboard.json", cm.Name))
		}
	}
	if n != 1 {
		p = append(p, fmt.Sprintf("%d ConfigMaps labelled grafana_dashboard=1, want 1", n))
	}
	return p
}

func TestKustomizations(t *testing.T) {
	for _, k := range kustomizations {
		t.Run(k.dir, func(t *testing.T) {
			r := renderDecode(t, k.dir)
			for _, p := range lint(k, r) {
				t.Error(p)
			}
		})
	}
}

// TestOverlaysDiffer checks what each overlay is for.
func TestOverlaysDiffer(t *testing.T) {
	cfg := func(r *rendered, key string) string {
		for _, o := range r.byKind["ConfigMap"] {
			if cm := o.typed.(*corev1.ConfigMap); strings.HasPrefix(cm.Name, "gps-config-") {
				return cm.Data[key]
			}
		}
		t.Fatal("no gps-config ConfigMap")
		return ""
	}
	dev := renderDecode(t, "overlays/dev")
	prod := renderDecode(t, "overlays/prod")
	if got := cfg(dev, "GPS_STREAM_REPLICAS"); got != "1" {
		t.Errorf("dev stream replicas %q, want 1 (a single NATS server)", got)
	}
	if got := cfg(prod, "GPS_STREAM_REPLICAS"); got != "3" {
		t.Errorf("prod stream replicas %q, want 3", got)
	}
	if got := cfg(prod, "GPS_NATS_CREDS"); got != "/etc/nats/creds/user.creds" {
		t.Errorf("prod credentials %q, want /etc/nats/creds/user.creds", got)
	}
	// Stream limits: what the binary reads from GPS_STREAM_MAX_AGE and
	// GPS_STREAM_MAX_BYTES must parse; prod bounds every stream's size and
	// never ages out TARGETS (work not yet done).
	for name, r := range map[string]*rendered{"dev": dev, "prod": prod} {
		if _, err := bus.ParseLimits(cfg(r, "GPS_STREAM_MAX_AGE"), cfg(r, "GPS_STREAM_MAX_BYTES")); err != nil {
			t.Errorf("%s stream limits: %v", name, err)
		}
	}
	if ls, _ := bus.ParseLimits(cfg(prod, "GPS_STREAM_MAX_AGE"), cfg(prod, "GPS_STREAM_MAX_BYTES")); ls != nil {
		for _, s := range bus.StreamNames() {
			l, ok := ls[s]
			if !ok {
				l = ls[bus.AllStreams]
			}
			if l.MaxBytes == 0 {
				t.Errorf("prod: stream %s has no size limit", s)
			}
			if s == bus.StreamTargets && l.MaxAge != 0 {
				t.Errorf("prod: TARGETS ages out after %v: targets not yet probed would be lost", l.MaxAge)
			}
		}
	} else {
		t.Error("prod: no stream limits")
	}
	var devSecret bool
	for _, o := range dev.byKind["Secret"] {
		devSecret = devSecret || strings.HasPrefix(o.name, "gps-nats-creds-")
	}
	if !devSecret {
		t.Error("dev: the placeholder gps-nats-creds Secret is not generated")
	}
	if n := len(prod.byKind["Secret"]); n != 0 {
		t.Errorf("prod renders %d Secrets: a placeholder would overwrite the operator's credentials", n)
	}
	mem := func(r *rendered, component string) resource.Quantity {
		for _, w := range workloads(r) {
			if w.component == component {
				return w.template.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]
			}
		}
		t.Fatalf("no %s", component)
		return resource.Quantity{}
	}
	for _, c := range services {
		d, p := mem(dev, c), mem(prod, c)
		if d.Cmp(p) >= 0 {
			t.Errorf("%s: dev memory limit %s not below prod's %s", c, d.String(), p.String())
		}
	}
}

// TestScanLists checks the prober's allow and block lists as rendered.
func TestScanLists(t *testing.T) {
	r := renderDecode(t, "overlays/prod")
	var cm *corev1.ConfigMap
	for _, o := range r.byKind["ConfigMap"] {
		if c := o.typed.(*corev1.ConfigMap); strings.HasPrefix(c.Name, "gps-scan-lists-") {
			cm = c
		}
	}
	if cm == nil {
		t.Fatal("no gps-scan-lists ConfigMap")
	}
	allow, err := parseList(cm.Data["allow.txt"])
	if err != nil {
		t.Fatalf("allow.txt: %v", err)
	}
	block, err := parseList(cm.Data["block.txt"])
	if err != nil {
		t.Fatalf("block.txt: %v", err)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}; !slices.Equal(allow, want) {
		t.Errorf("allow.txt = %v, want only the placeholder %v", allow, want)
	}
	if !strings.Contains(cm.Data["allow.txt"], "OPERATORS MUST SET THEIR OWN") {
		t.Error("allow.txt does not tell operators to set their own list")
	}
	// Block wins: a list that blocks every allowed prefix leaves nothing to
	// scan, and the prober refuses to start.
	for _, a := range allow {
		for _, b := range block {
			if b.Bits() <= a.Bits() && b.Contains(a.Addr()) {
				t.Errorf("block %v covers allow %v: nothing left to scan", b, a)
			}
		}
	}
	// The IANA special-purpose list of pkg/ipv4, but loopback (see block.txt).
	iana, err := os.ReadFile(filepath.Join("..", "pkg", "ipv4", "blocklist.conf"))
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("no IANA list to compare block.txt with: %v", err)
	}
	if err != nil {
		t.Fatalf("read the IANA list: %v", err)
	}
	want, err := parseList(string(iana))
	if err != nil {
		t.Fatalf("IANA list: %v", err)
	}
	for _, w := range want {
		if w == netip.MustParsePrefix("127.0.0.0/8") {
			continue
		}
		if !slices.Contains(block, w) {
			t.Errorf("block.txt lacks the IANA range %v", w)
		}
	}
}

func parseList(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	sc := bufio.NewScanner(strings.NewReader(s))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if !strings.Contains(line, "/") {
			line += "/32"
		}
		p, err := netip.ParsePrefix(line)
		if err != nil || !p.Addr().Is4() || p.Masked() != p {
			return nil, fmt.Errorf("line %d: %q is not an IPv4 prefix", n, line)
		}
		out = append(out, p)
	}
	return out, sc.Err()
}

// copyTree copies k8s/base and k8s/overlays into a new directory, applies
// edit to the file rel, and returns the directory.
func copyTree(t *testing.T, rel, old, new string) string {
	t.Helper()
	dst := t.TempDir()
	for _, top := range []string{"base", "overlays"} {
		err := filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return os.MkdirAll(filepath.Join(dst, path), 0o755)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if path == filepath.FromSlash(rel) {
				if !strings.Contains(string(b), old) {
					return fmt.Errorf("%s does not contain %q", path, old)
				}
				b = []byte(strings.Replace(string(b), old, new, 1))
			}
			return os.WriteFile(filepath.Join(dst, path), b, 0o644)
		})
		if err != nil {
			t.Fatalf("copy %s: %v", top, err)
		}
	}
	return dst
}

// TestBrokenManifestsFail checks that the checks above catch mistakes: a
// copy of the manifests with one defect must fail to decode or to lint.
func TestBrokenManifestsFail(t *testing.T) {
	dev := kustomizations[1]
	tests := []struct {
		name, file, old, new string
		wantDecode           string // a strict decode error containing this
		wantLint             string // else a lint problem containing this
	}{
		{
			name: "misspelt spec field", file: "base/modeler.yaml",
			old: "  replicas: 1\n", new: "  replicas: 1\n  replicass: 2\n",
			wantDecode: `unknown field "spec.replicass"`,
		},
		{
			name: "misspelt container field", file: "base/prober.yaml",
			old: "          imagePullPolicy: IfNotPresent\n", new: "          imagePullPolicy: IfNotPresent\n          imagePullPolicyy: Always\n",
			wantDecode: "imagePullPolicyy",
		},
		{
			name: "field in the wrong case", file: "base/predictor.yaml",
			old: "readOnlyRootFilesystem: true", new: "ReadOnlyRootFilesystem: true",
			wantDecode: "ReadOnlyRootFilesystem",
		},
		{
			name: "misspelt PDB field in an overlay", file: "overlays/prod/pdb.yaml",
			old: "  maxUnavailable: 1\n", new: "  maxUnavailable: 1\n  minAvailible: 1\n",
			wantDecode: "minAvailible",
		},
		{
			name: "unknown flag", file: "base/predictor.yaml",
			old: "            - --log-format\n", new: "            - --log-fromat\n",
			wantLint: `unknown flag "--log-fromat"`,
		},
		{
			name: "capability beyond NET_RAW", file: "base/prober.yaml",
			old: `add: ["NET_RAW"]`, new: `add: ["NET_RAW", "NET_ADMIN"]`,
			wantLint: "capabilities add [NET_RAW NET_ADMIN]",
		},
		{
			name: "capability on a non-prober", file: "base/modeler.yaml",
			old: `drop: ["ALL"]`, new: "drop: [\"ALL\"]\n              add: [\"NET_RAW\"]",
			wantLint: "capabilities add [NET_RAW], want []",
		},
		{
			name: "ConfigMap key missing", file: "base/modeler.yaml",
			old: "key: GPS_LOG_LEVEL", new: "key: GPS_LOGLEVEL",
			wantLint: `has no key "GPS_LOGLEVEL"`,
		},
		{
			name: "file outside any mount", file: "base/prober.yaml",
			old: "            - /etc/gps/block.txt\n", new: "            - /etc/gpz/block.txt\n",
			wantLint: "no volume is mounted there",
		},
		{
			name: "probe on an undeclared port", file: "base/seeder-job.yaml",
			old: "              path: /readyz\n              port: metrics\n", new: "              path: /readyz\n              port: 8080\n",
			wantLint: "readiness probe port 8080",
		},
		{
			name: "selector that misses its pods", file: "base/prober.yaml",
			old:      "    matchLabels:\n      app.kubernetes.io/name: gps\n      app.kubernetes.io/component: prober\n",
			new:      "    matchLabels:\n      app.kubernetes.io/name: gps\n      app.kubernetes.io/component: probe\n",
			wantLint: "does not match its pod labels",
		},
		{
			name: "service name not first", file: "base/modeler.yaml",
			old: "            - modeler\n", new: "            - modeller\n",
			wantLint: `args start with "modeller"`,
		},
		{
			name: "inventory without its subcommand", file: "base/inventory.yaml",
			old: "            - serve\n", new: "",
			wantLint: `want "inventory" then [serve]`,
		},
		{
			name: "seeder Deployment without --cycle", file: "base/seeder-cycles.yaml",
			old: "            - --cycle\n            - 24h\n", new: "",
			wantLint: "the seeder Deployment needs --cycle",
		},
		{
			name: "two seeders in cycles", file: "base/seeder-cycles.yaml",
			old: "  replicas: 0\n", new: "  replicas: 2\n",
			wantLint: "2 replicas of a singleton",
		},
		{
			name: "stream replicas out of range", file: "overlays/dev/kustomization.yaml",
			old: "GPS_STREAM_REPLICAS=1", new: "GPS_STREAM_REPLICAS=7",
			wantLint: `--replicas "7"`,
		},
		{
			name: "unpinned image", file: "overlays/dev/kustomization.yaml",
			old: "newTag: dev", new: "newTag: latest",
			wantLint: "has no pinned tag",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyTree(t, tc.file, tc.old, tc.new)
			overlay := "overlays/dev"
			if strings.HasPrefix(tc.file, "overlays/prod") {
				overlay = "overlays/prod"
			}
			objs, err := render(filepath.Join(dir, overlay))
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			r, err := decode(objs)
			if tc.wantDecode != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantDecode) {
					t.Fatalf("decode error %v, want one containing %q", err, tc.wantDecode)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			k := dev
			if overlay == "overlays/prod" {
				k = kustomizations[2]
			}
			problems := lint(k, r)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.wantLint) }) {
				t.Fatalf("lint problems %q, want one containing %q", problems, tc.wantLint)
			}
		})
	}
}

// TestNATSValues checks the values for the nats-io/k8s "nats" Helm chart.
func TestNATSValues(t *testing.T) {
	b, err := os.ReadFile("nats-values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.UnmarshalStrict(b, &v); err != nil {
		t.Fatalf("nats-values.yaml: %v", err)
	}
	get := func(path string) any {
		var cur any = v
		for _, key := range strings.Split(path, ".") {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = m[key]
		}
		return cur
	}
	for _, tc := range []struct {
		path string
		want any
	}{
		{"config.cluster.enabled", true},
		{"config.cluster.replicas", float64(3)},
		{"config.jetstream.enabled", true},
		{"config.jetstream.fileStore.enabled", true},
		{"config.jetstream.fileStore.pvc.enabled", true},
		{"config.jetstream.memoryStore.enabled", true},
		{"config.nats.tls.enabled", false},
		{"podDisruptionBudget.enabled", true},
	} {
		if got := get(tc.path); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.path, got, tc.want)
		}
	}
	for _, path := range []string{
		"config.jetstream.fileStore.pvc.size", "config.jetstream.fileStore.maxSize",
		"config.jetstream.memoryStore.maxSize",
		"container.merge.resources.requests.cpu", "container.merge.resources.requests.memory",
		"container.merge.resources.limits.memory",
	} {
		s, ok := get(path).(string)
		if !ok || s == "" {
			t.Errorf("%s is not set", path)
			continue
		}
		if _, err := resource.ParseQuantity(s); err != nil {
			t.Errorf("%s = %q: %v", path, s, err)
		}
	}
	// max_file_store must leave headroom on the volume: JetStream's sizes are
	// logical, the files on disk are larger.
	pvc := resource.MustParse(get("config.jetstream.fileStore.pvc.size").(string))
	max := resource.MustParse(get("config.jetstream.fileStore.maxSize").(string))
	if max.Cmp(pvc) >= 0 {
		t.Errorf("fileStore.maxSize %s must be below the PVC size %s", max.String(), pvc.String())
	}
	// The memory store lives in the container's memory.
	memLimit := resource.MustParse(get("container.merge.resources.limits.memory").(string))
	memStore := resource.MustParse(get("config.jetstream.memoryStore.maxSize").(string))
	if memStore.Cmp(memLimit) >= 0 {
		t.Errorf("memoryStore.maxSize %s must be below the memory limit %s", memStore.String(), memLimit.String())
	}
}

var metricRef = regexp.MustCompile(`\bgps_[a-z0-9_]+`)

// TestGrafanaDashboard checks that the dashboard parses and that every
// query uses metrics pkg/telemetry defines, and every metric is on it.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("base", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	}
	type panel struct {
		ID      int      `json:"id"`
		Type    string   `json:"type"`
		Title   string   `json:"title"`
		Targets []target `json:"targets"`
		Panels  []panel  `json:"panels"`
	}
	var d struct {
		UID        string  `json:"uid"`
		Title      string  `json:"title"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard uid %q title %q with %d panels", d.UID, d.Title, len(d.Panels))
	}
	known := map[string]bool{}
	for _, n := range telemetry.MetricNames() {
		known[n] = true
	}
	used := map[string]bool{}
	check := func(where, expr string) int {
		n := 0
		for _, m := range metricRef.FindAllString(expr, -1) {
			base := m
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(m, suf); ok && known[b] {
					base = b
				}
			}
			if !known[base] {
				t.Errorf("%s: %s is not a metric of pkg/telemetry", where, m)
				continue
			}
			used[base] = true
			n++
		}
		return n
	}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if check(fmt.Sprintf("panel %q query %s", p.Title, tg.RefID), tg.Expr) == 0 {
					t.Errorf("panel %q query %s uses no gps metric: %q", p.Title, tg.RefID, tg.Expr)
				}
				if strings.Contains(tg.Expr, "_bucket") && !strings.Contains(tg.Expr, "histogram_quantile") {
					t.Errorf("panel %q query %s reads buckets without histogram_quantile", p.Title, tg.RefID)
				}
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		check("variable "+v.Name, v.Definition)
	}
	for _, n := range telemetry.MetricNames() {
		if !used[n] {
			t.Errorf("metric %s is on no panel", n)
		}
	}
	for _, q := range []string{"histogram_quantile(0.5, sum by (le) (rate(gps_prediction_latency_seconds_bucket", "histogram_quantile(0.99, sum by (le) (rate(gps_prediction_latency_seconds_bucket"} {
		if !strings.Contains(string(b), q) {
			t.Errorf("no prediction latency panel query %q...", q)
		}
	}
}
