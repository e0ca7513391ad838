// SPDX-License-Identifier: Apache-2.0

package mime

// BenchMessage is the ~34 KB benchmark message, for the external benchmarks.
var BenchMessage = benchMessage

// BenchMessageWith is benchMessage with an attachment of n bytes.
var BenchMessageWith = benchMessageWith
