package main

import (
	"fmt"
	"io"
	"time"
)

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func mb(n int64) string {
	if n == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

func printTable(w io.Writer, cases []benchCase, res []*caseResult) {
	fmt.Fprintln(w, "| case | median | min | max | set aside | CPU (median) | peak RssAnon | peak VmHWM |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	aside := false
	for _, r := range res {
		ss := r.counted()
		lo, hi := ss[0].total, ss[0].total
		for _, s := range ss {
			lo, hi = min(lo, s.total), max(hi, s.total)
		}
		setAside := "–"
		if n := len(r.disturbed); n > 0 {
			aside = true
			setAside = fmt.Sprintf("%d (all runs: %s)", n, secs(r.medianAll()))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.c.name, secs(r.median()), secs(lo), secs(hi), setAside, secs(r.medianCPU()), mb(r.peakAnon()), mb(r.peakHWM()))
		if len(r.c.steps) > 1 {
			for i, st := range r.c.steps {
				fmt.Fprintf(w, "| &nbsp;&nbsp;of which %s | %s | | | | | | |\n", st.label, secs(r.stepMedian(i)))
			}
		}
	}
	if aside {
		fmt.Fprintf(w, "\nSet aside: runs during which, or during the run just before which, this virtual machine handed more than %d MB of free memory back to its host; each was made up in an extra round. Medians, min and max are of the runs not set aside.\n", disturbedBytes>>20)
	}
	fmt.Fprintln(w)
}

func find(res []*caseResult, name string) *caseResult {
	for _, r := range res {
		if r.c.name == name {
			return r
		}
	}
	return nil
}

func printRatios(w io.Writer, res []*caseResult, labels []string) {
	type ratio struct {
		ours, ref string
		target    float64
	}
	ratios := []ratio{
		{caseOurs, caseCBackupIC, 0.75},
		{caseOursCopy, caseCpSync, 1.3},
		{caseOursVerQ, caseCQC, 1.2},
		{caseOursVer, caseCIC, 0},
		{caseOursQuick, caseCBackupIC, 0},
		{caseCVacuum, caseCBackupIC, 0},
		{caseOursCopy, caseCp, 0},
	}
	for _, l := range labels {
		for _, n := range []string{caseOurs, caseOursQuick, caseOursCopy, caseOursVer, caseOursVerQ} {
			ratios = append(ratios, ratio{n, l + ": " + n, 0})
		}
	}
	fmt.Fprintln(w, "| ratio of medians | value | all runs | target |")
	fmt.Fprintln(w, "| --- | ---: | ---: | --- |")
	for _, q := range ratios {
		a, b := find(res, q.ours), find(res, q.ref)
		if a == nil || b == nil || b.median() == 0 {
			continue
		}
		// Like with like: if either side never had an undisturbed run,
		// both sides' medians are taken over all runs.
		all := a.medianAll().Seconds() / b.medianAll().Seconds()
		v := a.median().Seconds() / b.median().Seconds()
		if len(a.samples) == 0 || len(b.samples) == 0 {
			v = all
		}
		t := ""
		if q.target > 0 {
			verdict := "met"
			if v > q.target {
				verdict = "NOT met"
			}
			t = fmt.Sprintf("≤ %.2f: %s", q.target, verdict)
		}
		fmt.Fprintf(w, "| %s / %s | %.2f | %.2f | %s |\n", q.ours, q.ref, v, all, t)
	}
	var peak int64
	for _, r := range res {
		if len(r.c.steps) == 1 && len(r.c.steps[0].argv) > 0 && (r.c.name == caseOurs || r.c.name == caseOursQuick || r.c.name == caseOursCopy || r.c.name == caseOursVer || r.c.name == caseOursVerQ) {
			peak = max(peak, r.peakAnon())
		}
	}
	if peak > 0 {
		verdict := "met"
		if peak > 64<<20 {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "| sqlite-backup peak RssAnon (any case) | %s | | ≤ 64 MiB: %s |\n", mb(peak), verdict)
	}
	fmt.Fprintln(w)
}
