# Homebrew formula for the Aegis Agent Kit (`brew install aegisvm-agent-kit`,
# as the spec says). Template: `make formula` writes
# dist/homebrew/aegisvm-agent-kit.rb with the values from dist/SHA256SUMS.
class AegisvmAgentKit < Formula
  desc "Agent Kit for Aegis: a messaging-driven LLM agent in a microVM"
  homepage "https://github.com/aegisvm/aegis"
  url "@RELEASE_URL@/aegisvm-agent-kit-@VERSION@.tar.gz"
  version "@VERSION@"
  sha256 "@SHA256_KIT@"
  license "Apache-2.0"

  depends_on "aegis"

  def install
    pkgshare.install "agent.yaml"
    doc.install "LICENSE"
  end

  # What `make install-kit` does: start aegisd if needed, install the manifest.
  # Never fails the install: a daemon that cannot start here (sandbox, no
  # guest assets yet) only leaves the manual step below.
  def post_install
    aegis = Formula["aegis"].opt_bin/"aegis"
    manifest = pkgshare/"agent.yaml"
    return if quiet_system(aegis, "up") && quiet_system(aegis, "kit", "install", manifest)

    opoo "could not install the kit into aegisd now; run: aegis up && aegis kit install #{manifest}"
  end

  def caveats
    <<~EOS
      The kit manifest is #{opt_pkgshare}/agent.yaml. If post-install could not
      reach aegisd, install it with:
        aegis up && aegis kit install #{opt_pkgshare}/agent.yaml
    EOS
  end

  test do
    assert_match "name: agent", (pkgshare/"agent.yaml").read
  end
end
