// SPDX-License-Identifier: Apache-2.0

package obs

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

type dtoMetric struct{}

// read returns the current value of a counter or gauge.
func (dtoMetric) read(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

// Value returns the current value of a counter or gauge, for tests and status pages.
func Value(c prometheus.Metric) float64 { return dtoMetric{}.read(c) }
