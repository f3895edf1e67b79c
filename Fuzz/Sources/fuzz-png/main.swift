// PNG decoding as `run --image` does it (FuzzSupport.fuzzImageDecoding).
import FuzzSupport

runFuzzer { data, size in fuzzImageDecoding(data, size, name: "input.png") }
