"""Services: each public function changes state in one transaction, calling the policy engine and the ledger."""
